"""Mutual TLS: an operator identified by the SHA-256 fingerprint of a client
certificate registered with `taxii-server certs register` (TAXII 2.1 §8.3.1:
PKIX verification by default, pinning allowed; here the handshake verifies the
chain and the registration pins the certificate).

The certificate arrives either through the server's own TLS handshake
(`serve --tls-client-ca`, or deploy/gunicorn.tls.conf.py: real subprocesses) or
from a reverse proxy in the configured header, believed only from the
configured proxy addresses (the conftest `server`, which listens on
127.0.0.1). Without an Authorization header the certificate is the
credential; an Authorization header is always the credential when present.
"""

from __future__ import annotations

import datetime
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conftest import TAXII, TaxiiSession, write_config
from test_tls import SERVER_KINDS, make_deployment, start_https_server
from taxii_server.app import create_app
from taxii_server.auth import authenticate
from taxii_server.cli import main
from taxii_server.config import ConfigError, load_settings
from taxii_server.storage import open_store
from taxii_server.storage.base import ClientCertRecord
from taxii_server.timestamps import now_micros

HEADER = "X-SSL-Client-Cert"
OVERRIDES = ("TAXII_STORAGE_URL", "TAXII_SERVER_SECRET", "TAXII_CONFIG")


# --- certificates ---------------------------------------------------------------------------------------

@dataclass
class Credential:
    """A client certificate and its key, in memory and as files for TLS clients."""

    certificate: x509.Certificate
    cert_file: Path
    key_file: Path

    @property
    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def fingerprint(self) -> str:
        return self.certificate.fingerprint(hashes.SHA256()).hex()

    @property
    def forwarded(self) -> dict:
        """The header a proxy sets: URL-encoded PEM, as nginx's $ssl_client_escaped_cert."""
        return {HEADER: quote(self.pem, safe="")}


class Authority:
    """A test CA issuing client certificates, as an operator's PKI would."""

    def __init__(self, folder: Path, name: str = "Test client CA"):
        self.folder = folder
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.certificate = (
            x509.CertificateBuilder().subject_name(self.name).issuer_name(self.name)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256()))
        self.file = folder / f"{name.replace(' ', '-')}.pem"
        self.file.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    def issue(self, common_name: str, valid_days: tuple[int, int] = (-1, 30)) -> Credential:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now + datetime.timedelta(days=valid_days[0]))
            .not_valid_after(now + datetime.timedelta(days=valid_days[1]))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256()))
        cert_file, key_file = self.folder / f"{common_name}.pem", self.folder / f"{common_name}.key"
        cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return Credential(certificate, cert_file, key_file)


@pytest.fixture(scope="module")
def authority(tmp_path_factory) -> Authority:
    return Authority(tmp_path_factory.mktemp("client-ca"))


_issued = iter(range(10_000))


@pytest.fixture
def issue(authority):
    """issue("northtel") -> a fresh client certificate (not yet registered)."""
    return lambda owner: authority.issue(f"{owner}-soc-{next(_issued)}")


# --- the command line -------------------------------------------------------------------------------------

def cli(config: Path, *args: str):
    return CliRunner().invoke(main, [*args, "--config", str(config)], env={name: None for name in OVERRIDES})


def register(config: Path, operator: str, credential: Credential, *extra: str) -> str:
    done = cli(config, "certs", "register", operator, str(credential.cert_file), *extra)
    assert done.exit_code == 0, done.output
    return done.stdout.splitlines()[-1]


def revoke(config: Path, fingerprint: str) -> None:
    done = cli(config, "certs", "revoke", fingerprint)
    assert done.exit_code == 0, done.output


def test_register_prints_the_sha256_fingerprint_of_the_certificate(config_path, issue):
    credential = issue("northtel")
    assert register(config_path, "northtel", credential) == credential.fingerprint


def test_register_stores_the_fingerprint_for_the_operator_and_nothing_of_the_key(config_path, store, issue):
    credential = issue("northtel")
    register(config_path, "northtel", credential, "--label", "qradar prod")
    record = store.find_client_cert(credential.fingerprint)
    assert (record.operator_id, record.label, record.revoked) == ("northtel", "qradar prod", None)
    assert record.subject == credential.certificate.subject.rfc4514_string()
    assert record.expires == int(credential.certificate.not_valid_after_utc.timestamp()) * 1_000_000


def test_register_refuses_an_unknown_operator(config_path, store, issue):
    credential = issue("nobody")
    refused = cli(config_path, "certs", "register", "nobody", str(credential.cert_file))
    assert refused.exit_code == 1 and "no operator 'nobody'" in refused.output
    assert store.find_client_cert(credential.fingerprint) is None


def test_register_refuses_a_file_that_is_not_a_pem_certificate(config_path, tmp_path, issue):
    not_a_certificate = issue("northtel").key_file
    refused = cli(config_path, "certs", "register", "northtel", str(not_a_certificate))
    assert refused.exit_code == 1 and "not a PEM-encoded X.509 certificate" in refused.output


def test_register_refuses_an_expired_certificate(config_path, store, authority):
    expired = authority.issue("northtel-expired", valid_days=(-30, -1))
    refused = cli(config_path, "certs", "register", "northtel", str(expired.cert_file))
    assert refused.exit_code == 1 and "expired" in refused.output
    assert store.find_client_cert(expired.fingerprint) is None


def test_a_certificate_is_registered_for_one_operator_only_and_a_revoked_one_stays_revoked(config_path, issue):
    credential = issue("northtel")
    register(config_path, "northtel", credential)
    again = cli(config_path, "certs", "register", "southwave", str(credential.cert_file))
    assert again.exit_code == 1 and "already registered for northtel" in again.output
    revoke(config_path, credential.fingerprint)
    after_revocation = cli(config_path, "certs", "register", "northtel", str(credential.cert_file))
    assert after_revocation.exit_code == 1 and "revoked" in after_revocation.output


def test_list_shows_each_certificate_with_its_operator_and_state(config_path, issue):
    north, south = issue("northtel"), issue("southwave")
    register(config_path, "northtel", north)
    register(config_path, "southwave", south)
    revoke(config_path, south.fingerprint)
    rows = {line.split()[0]: line.split() for line in cli(config_path, "certs", "list").stdout.splitlines()[1:]}
    assert rows[north.fingerprint][1] == "northtel" and "active" in rows[north.fingerprint]
    assert rows[south.fingerprint][1] == "southwave" and "revoked" in rows[south.fingerprint]
    only_north = cli(config_path, "certs", "list", "--operator", "northtel").stdout
    assert north.fingerprint in only_north and south.fingerprint not in only_north


def test_revoke_accepts_a_prefix_or_openssl_colon_notation_but_not_an_ambiguous_or_unknown_one(config_path, store,
                                                                                                issue):
    first, second = issue("northtel"), issue("northtel")
    register(config_path, "northtel", first)
    register(config_path, "northtel", second)
    assert cli(config_path, "certs", "revoke", first.fingerprint[:5]).exit_code == 1  # too short to be sure
    assert cli(config_path, "certs", "revoke", "0" * 64).exit_code == 1
    colon_notation = ":".join(second.fingerprint[i:i + 2] for i in range(0, 64, 2)).upper()
    revoke(config_path, colon_notation)
    revoke(config_path, first.fingerprint[:12])
    assert store.find_client_cert(first.fingerprint).revoked is not None
    assert store.find_client_cert(second.fingerprint).revoked is not None


# --- behind a reverse proxy (the conftest server, on 127.0.0.1) ----------------------------------------------

@pytest.fixture
def trusted_proxies() -> list[str]:
    """The proxy addresses in the configuration; tests replace it with parametrize."""
    return ["127.0.0.1/32"]


@pytest.fixture
def config_path(tmp_path, trusted_proxies) -> Path:
    return write_config(tmp_path, mtls={"proxy_header": HEADER, "trusted_proxies": trusted_proxies})


@pytest.fixture
def anonymous(server) -> TaxiiSession:
    """A session with no Authorization header: only a forwarded certificate can identify it."""
    return TaxiiSession(server.url, key=None)


def collection_titles(answer) -> list[str]:
    assert answer.status_code == 200, answer.text
    return sorted(c["title"] for c in answer.json().get("collections", []))


def assert_unauthorized(answer) -> None:
    assert answer.status_code == 401
    assert answer.headers["Content-Type"] == TAXII
    assert "WWW-Authenticate" in answer.headers
    assert answer.json()["http_status"] == "401"


@pytest.mark.parametrize("operator", ["regulator", "northtel", "southwave"])
def test_a_registered_certificate_from_a_trusted_proxy_gives_exactly_its_operators_rights(
        config_path, anonymous, as_operator, issue, operator):
    credential = issue(operator)
    register(config_path, operator, credential)
    by_certificate = anonymous.get("/collections/", headers=credential.forwarded)
    by_key = as_operator(operator).get("/collections/")
    assert collection_titles(by_certificate) == collection_titles(by_key)


def test_a_licensee_identified_by_certificate_reaches_its_own_reports_and_not_another_licensees(
        config_path, settings, anonymous, issue):
    credential = issue("northtel")
    register(config_path, "northtel", credential)
    own, other = settings.collection("northtel-reports").id, settings.collection("southwave-reports").id
    assert anonymous.get(f"/collections/{own}/objects/", headers=credential.forwarded).status_code == 200
    assert anonymous.get(f"/collections/{other}/objects/", headers=credential.forwarded).status_code == 404


def test_the_principal_of_a_certificate_login_has_key_id_cert_and_the_fingerprint_prefix(
        config_path, app, settings, store, issue):
    credential = issue("southwave")
    register(config_path, "southwave", credential)
    with app.test_request_context("/taxii2/", headers=credential.forwarded, environ_base={"REMOTE_ADDR": "127.0.0.1"}):
        principal = authenticate(None, settings, store)
    assert principal.operator.id == "southwave"
    assert principal.key_id == f"cert:{credential.fingerprint[:12]}"


def test_an_unregistered_certificate_is_refused_with_401(anonymous, issue):
    assert_unauthorized(anonymous.get("/collections/", headers=issue("northtel").forwarded))


def test_a_revoked_certificate_is_refused_from_the_next_request_on(config_path, anonymous, issue):
    credential = issue("northtel")
    register(config_path, "northtel", credential)
    assert anonymous.get("/collections/", headers=credential.forwarded).status_code == 200
    revoke(config_path, credential.fingerprint)
    assert_unauthorized(anonymous.get("/collections/", headers=credential.forwarded))


def test_a_registration_past_the_certificates_expiry_is_refused(anonymous, store, authority):
    """The certificate's own notAfter, kept with the registration, bounds it."""
    expired = authority.issue("northtel-lapsed", valid_days=(-30, -1))
    store.add_client_cert(ClientCertRecord(fingerprint=expired.fingerprint, operator_id="northtel",
                                           subject="CN=northtel-lapsed", created=now_micros() - 10**9,
                                           expires=int(expired.certificate.not_valid_after_utc.timestamp()) * 10**6))
    assert_unauthorized(anonymous.get("/collections/", headers=expired.forwarded))


@pytest.mark.parametrize("value", ["not a certificate",
                                   quote("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")])
def test_an_unreadable_forwarded_certificate_is_refused_with_401(anonymous, value):
    assert_unauthorized(anonymous.get("/collections/", headers={HEADER: value}))


def test_an_api_key_still_works_beside_certificates(config_path, as_operator, issue):
    register(config_path, "northtel", issue("northtel"))
    for scheme in ("bearer", "basic", "token"):
        assert as_operator("southwave", scheme=scheme).get("/collections/").status_code == 200


def test_an_authorization_header_is_the_credential_even_when_a_certificate_is_forwarded(
        config_path, as_operator, server, issue):
    """The key decides who the caller is; a bad key is not rescued by a good certificate."""
    north = issue("northtel")
    register(config_path, "northtel", north)
    as_southwave = as_operator("southwave").get("/collections/")
    with_both = as_operator("southwave").get("/collections/", headers=north.forwarded)
    assert collection_titles(with_both) == collection_titles(as_southwave)
    bad_key = TaxiiSession(server.url, key="tx_000000000000_" + "A" * 43)
    assert_unauthorized(bad_key.get("/collections/", headers=north.forwarded))


@pytest.mark.parametrize("trusted_proxies", [["10.0.0.0/8"], ["::1", "192.0.2.10"]])
def test_the_header_is_ignored_from_an_address_that_is_not_a_trusted_proxy(config_path, anonymous, as_operator,
                                                                          issue, trusted_proxies):
    credential = issue("northtel")
    register(config_path, "northtel", credential)
    answer = anonymous.get("/collections/", headers=credential.forwarded)
    assert_unauthorized(answer)
    assert "Send an API key" in answer.json()["description"]  # as if no certificate had been sent
    assert as_operator("southwave").get("/collections/", headers=credential.forwarded).status_code == 200


def test_without_an_mtls_section_no_header_is_believed(tmp_path, issue):
    """The conftest deployment has no `mtls` section: no address is a trusted proxy."""
    config = write_config(tmp_path)
    credential = issue("northtel")
    register(config, "northtel", credential)
    settings = load_settings(config, environ={})
    assert settings.mtls is None
    store = open_store(settings.storage_url)
    try:
        client = create_app(settings, store).test_client()
        answer = client.get("/taxii2/", headers={**credential.forwarded, "Accept": TAXII},
                            environ_base={"REMOTE_ADDR": "127.0.0.1"})
        assert answer.status_code == 401
    finally:
        store.close()


@pytest.mark.parametrize("mtls, problem", [
    ({"proxy_header": HEADER, "trusted_proxies": ["not-an-address"]}, "not an IP address or network"),
    ({"proxy_header": HEADER, "trusted_proxies": []}, "mtls/trusted_proxies"),
    ({"proxy_header": "X SSL Cert", "trusted_proxies": ["127.0.0.1"]}, "mtls/proxy_header"),
    ({"trusted_proxies": ["127.0.0.1"]}, "proxy_header"),
])
def test_an_mtls_section_with_a_mistake_is_refused_at_load_time(tmp_path, mtls, problem):
    with pytest.raises(ConfigError, match=problem):
        load_settings(write_config(tmp_path, mtls=mtls), environ={})


# --- the server terminates TLS itself ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    return make_deployment(tmp_path_factory.mktemp("mtls"))


@pytest.fixture(scope="module", params=SERVER_KINDS)
def mtls_server(request, deployment, authority):
    """HTTPS asking for an optional client certificate issued by the test CA."""
    server = start_https_server(request.param, deployment, client_ca=authority.file)
    yield server
    server.stop()


def https_get(server, deployment, path: str, credential: Credential | None = None, key: str | None = None):
    headers = {"Accept": TAXII, **({"Authorization": f"Bearer {key}"} if key else {})}
    client_cert = (str(credential.cert_file), str(credential.key_file)) if credential else None
    return requests.get(f"{server.url}{path}", headers=headers, cert=client_cert, verify=str(deployment.cert),
                        timeout=30)


@pytest.fixture
def registered(deployment, authority):
    """registered("northtel") -> a client certificate registered for that operator on the TLS deployment."""
    def make(operator: str) -> Credential:
        credential = authority.issue(f"{operator}-tls-{next(_issued)}")
        register(deployment.config, operator, credential)
        return credential
    return make


def test_over_tls_a_registered_client_certificate_identifies_its_operator(mtls_server, deployment, registered):
    credential = registered("northtel")
    by_certificate = https_get(mtls_server, deployment, "/api/collections/", credential)
    by_key = https_get(mtls_server, deployment, "/api/collections/", key=deployment.keys["northtel"])
    assert collection_titles(by_certificate) == collection_titles(by_key)
    assert "NorthTel: reports to the regulator" in collection_titles(by_certificate)


def test_over_tls_an_unregistered_client_certificate_from_the_ca_is_refused_with_401(mtls_server, deployment,
                                                                                      authority):
    assert_unauthorized(https_get(mtls_server, deployment, "/api/collections/", authority.issue("stranger-tls")))


def test_over_tls_a_revoked_client_certificate_is_refused_with_401(mtls_server, deployment, registered):
    credential = registered("southwave")
    assert https_get(mtls_server, deployment, "/api/collections/", credential).status_code == 200
    revoke(deployment.config, credential.fingerprint)
    assert_unauthorized(https_get(mtls_server, deployment, "/api/collections/", credential))


def test_over_tls_a_client_without_a_certificate_still_authenticates_with_its_key(mtls_server, deployment):
    """The certificate is optional in the handshake: SIEMs that poll with keys are unaffected."""
    assert https_get(mtls_server, deployment, "/api/collections/", key=deployment.keys["southwave"]).status_code == 200
    assert_unauthorized(https_get(mtls_server, deployment, "/api/collections/"))


def test_over_tls_a_key_is_the_credential_even_beside_a_registered_certificate(mtls_server, deployment, registered):
    north = registered("northtel")
    with_both = https_get(mtls_server, deployment, "/api/collections/", north, key=deployment.keys["regulator"])
    as_regulator = https_get(mtls_server, deployment, "/api/collections/", key=deployment.keys["regulator"])
    assert collection_titles(with_both) == collection_titles(as_regulator)


@pytest.mark.parametrize("header", ["SSL-Client-Cert", HEADER])
def test_over_tls_a_certificate_sent_as_a_header_identifies_nobody(mtls_server, deployment, registered, header):
    """Only the handshake can present a certificate: there is no trusted proxy in this deployment,
    and a header never becomes the server's own SSL_CLIENT_CERT."""
    credential = registered("northtel")
    answer = requests.get(f"{mtls_server.url}/api/collections/", verify=str(deployment.cert), timeout=30,
                          headers={"Accept": TAXII, header: quote(credential.pem, safe="")})
    assert_unauthorized(answer)


def test_over_tls_a_certificate_from_another_ca_fails_the_handshake(mtls_server, deployment, tmp_path):
    """The handshake verifies the chain against the client CA file (§8.3.1: PKIX by default)."""
    foreign = Authority(tmp_path, "Unrelated CA").issue("northtel-elsewhere")
    context = ssl.create_default_context(cafile=str(deployment.cert))
    context.load_cert_chain(foreign.cert_file, foreign.key_file)
    with pytest.raises((ssl.SSLError, ConnectionError)), \
            socket.create_connection(("127.0.0.1", mtls_server.port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as connection:
        # A TLS 1.3 client learns of the refusal when it next reads.
        connection.sendall(b"GET /taxii2/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert connection.recv(1) == b""
