"""HTTPS (TAXII 2.1 §8.2.2): the server speaks TLS 1.2 or newer only, with no
TLS 1.3 0-RTT and no TLS 1.2 cipher suite from the RFC 7540 Appendix A list;
`taxii-server tls dev-cert` makes a development certificate.

Every server test runs twice, against the two ways of serving HTTPS:
`taxii-server serve --tls-cert/--tls-key` and gunicorn with
deploy/gunicorn.tls.conf.py. Both are real subprocesses on a free loopback port.
The helpers here (HttpsServer, start_https_server, ...) also serve test_mtls.py.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from taxii2client.v21 import Server

from conftest import REPO, TAXII, write_config, free_port
from taxii_server.cli import main
from taxii_server.config import load_settings
from taxii_server.keys import issue_key
from taxii_server.storage import open_store

BIN = Path(sys.executable).parent
SERVER_KINDS = ("serve", "gunicorn-conf")
# Variables that would point the server somewhere else than the test deployment.
OVERRIDES = ("TAXII_STORAGE_URL", "TAXII_SERVER_SECRET", "TAXII_CONFIG")


# --- a deployment served over HTTPS (shared with test_mtls.py) --------------------------------------

@dataclass
class Deployment:
    folder: Path
    config: Path
    cert: Path   # the server's certificate (from `tls dev-cert`): clients trust exactly this
    key: Path
    keys: dict[str, str]  # one API key per operator


def make_deployment(folder: Path) -> Deployment:
    """A configuration, a store with one key per operator, and a dev certificate made by the CLI."""
    config = write_config(folder)
    made = subprocess.run([str(BIN / "taxii-server"), "tls", "dev-cert", "--out-dir", str(folder / "tls"),
                           "--host", "localhost", "--host", "127.0.0.1"], capture_output=True, text=True, check=False)
    assert made.returncode == 0, made.stderr
    settings = load_settings(config, environ={})
    store = open_store(settings.storage_url)
    try:
        keys = {op: issue_key(store, settings.secret, op).raw_key for op in settings.operators}
    finally:
        store.close()
    return Deployment(folder, config, folder / "tls" / "cert.pem", folder / "tls" / "key.pem", keys)


@dataclass
class HttpsServer:
    process: subprocess.Popen
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_https_server(kind: str, deployment: Deployment, client_ca: Path | None = None) -> HttpsServer:
    """`taxii-server serve` with TLS options, or gunicorn with the production TLS configuration file."""
    port = free_port()
    log = deployment.folder / f"{kind}-{port}.log"
    environ = {name: value for name, value in os.environ.items() if name not in OVERRIDES}
    # gunicorn's control socket lives here rather than in the shared home folder.
    environ["XDG_RUNTIME_DIR"] = str(deployment.folder)
    if kind == "serve":
        command = [str(BIN / "taxii-server"), "serve", "--config", str(deployment.config), "--port", str(port),
                   "--workers", "1", "--tls-cert", str(deployment.cert), "--tls-key", str(deployment.key)]
        if client_ca:
            command += ["--tls-client-ca", str(client_ca)]
    else:
        command = [str(BIN / "gunicorn"), "-c", str(REPO / "deploy" / "gunicorn.tls.conf.py"), "taxii_server.wsgi:app"]
        environ.update(TAXII_CONFIG=str(deployment.config), TAXII_TLS_CERT=str(deployment.cert),
                       TAXII_TLS_KEY=str(deployment.key), TAXII_BIND=f"127.0.0.1:{port}",
                       TAXII_WORKERS="1", TAXII_THREADS="4")
        if client_ca:
            environ["TAXII_TLS_CLIENT_CA"] = str(client_ca)
    with open(log, "wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=environ,
                                   cwd=deployment.folder)
    server = HttpsServer(process, port, log)
    wait_until_answering(server, deployment.cert)
    return server


def wait_until_answering(server: HttpsServer, trusted: Path) -> None:
    """Poll until the server answers HTTPS at all (401 counts), with a bounded number of tries."""
    for _ in range(400):
        if server.process.poll() is not None:
            pytest.fail(f"the server exited with {server.process.returncode}:\n{server.log.read_text()}")
        try:
            requests.get(f"{server.url}/taxii2/", verify=str(trusted), timeout=5)
            return
        except requests.ConnectionError:
            time.sleep(0.05)
    server.stop()
    pytest.fail(f"the server never answered on {server.url}:\n{server.log.read_text()}")


def tls_client(trusted: Path | None = None, minimum=None, maximum=None, ciphers: str | None = None) -> ssl.SSLContext:
    """A client context; without `trusted` it checks nothing, to probe the protocol alone."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if trusted is None:
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    else:
        context.load_verify_locations(trusted)
    if minimum is not None:
        context.minimum_version = minimum
    if maximum is not None:
        context.maximum_version = maximum
    if ciphers is not None:
        context.set_ciphers(ciphers)
    return context


def handshake(server: HttpsServer, context: ssl.SSLContext) -> tuple[str, str]:
    """Connect, complete the TLS handshake and return (protocol version, cipher suite)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as connection:
        return connection.version(), connection.cipher()[0]


def refused_reason(server: HttpsServer, context: ssl.SSLContext) -> str:
    """The reason the handshake failed, as the client saw it."""
    with pytest.raises(ssl.SSLError) as failure:
        handshake(server, context)
    return failure.value.reason


# --- fixtures ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> Deployment:
    return make_deployment(tmp_path_factory.mktemp("https"))


@pytest.fixture(scope="module", params=SERVER_KINDS)
def https_server(request, deployment) -> HttpsServer:
    server = start_https_server(request.param, deployment)
    yield server
    server.stop()


# --- tls dev-cert -------------------------------------------------------------------------------------

def dev_cert(out_dir: Path, *args: str):
    return CliRunner().invoke(main, ["tls", "dev-cert", "--out-dir", str(out_dir), *args])


def test_dev_cert_writes_a_self_signed_certificate_for_the_named_hosts(tmp_path):
    made = dev_cert(tmp_path, "--host", "taxii.example.org", "--host", "127.0.0.1", "--host", "::1")
    assert made.exit_code == 0, made.output
    certificate = x509.load_pem_x509_certificate((tmp_path / "cert.pem").read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["taxii.example.org"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1"),
                                                         ipaddress.ip_address("::1")]
    assert certificate.issuer == certificate.subject
    certificate.verify_directly_issued_by(certificate)  # signed by its own key
    assert f"SHA-256 {certificate.fingerprint(hashes.SHA256()).hex()}" in made.output


def test_dev_cert_private_key_is_readable_by_its_owner_only_and_matches_the_certificate(tmp_path):
    assert dev_cert(tmp_path).exit_code == 0
    key_file = tmp_path / "key.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    certificate = x509.load_pem_x509_certificate((tmp_path / "cert.pem").read_bytes())
    assert key.public_key() == certificate.public_key()


def test_dev_cert_names_localhost_and_the_loopback_addresses_by_default(tmp_path):
    assert dev_cert(tmp_path).exit_code == 0
    certificate = x509.load_pem_x509_certificate((tmp_path / "cert.pem").read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert {str(a) for a in names.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}


def test_dev_cert_does_not_overwrite_an_existing_certificate_unless_forced(tmp_path):
    assert dev_cert(tmp_path).exit_code == 0
    first = (tmp_path / "key.pem").read_bytes()
    again = dev_cert(tmp_path)
    assert again.exit_code != 0 and "exists" in again.output
    assert (tmp_path / "key.pem").read_bytes() == first
    assert dev_cert(tmp_path, "--force").exit_code == 0
    assert (tmp_path / "key.pem").read_bytes() != first
    assert stat.S_IMODE((tmp_path / "key.pem").stat().st_mode) == 0o600


# --- HTTPS ----------------------------------------------------------------------------------------------

def test_a_client_trusting_the_certificate_gets_taxii_answers_over_https(https_server, deployment):
    """§8.2.2 #1: TAXII requests are accepted over HTTPS."""
    answer = requests.get(f"{https_server.url}/taxii2/", verify=str(deployment.cert),
                          headers={"Accept": TAXII, "Authorization": f"Bearer {deployment.keys['northtel']}"})
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == TAXII
    assert answer.json()["api_roots"] == ["/api/"]


def test_the_dev_certificate_is_valid_for_localhost_as_well(https_server, deployment):
    answer = requests.get(f"https://localhost:{https_server.port}/taxii2/", verify=str(deployment.cert),
                          headers={"Accept": TAXII})
    assert answer.status_code == 401  # TLS verified the name; authentication is the next step


def test_taxii2_client_polls_over_https(https_server, deployment, monkeypatch):
    # requests lets these variables override a session's own `verify`, which is how taxii2-client passes it.
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(variable, raising=False)
    server = Server(f"{https_server.url}/taxii2/", user="regulator", password=deployment.keys["regulator"],
                    verify=str(deployment.cert))
    assert [root.url for root in server.api_roots] == [f"{https_server.url}/api/"]
    assert {c.alias for c in server.api_roots[0].collections} >= {"advisories", "community"}


def test_a_client_that_does_not_trust_the_certificate_is_not_served(https_server):
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{https_server.url}/taxii2/", headers={"Accept": TAXII})


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["TLS 1.2", "TLS 1.3"])
def test_tls_1_2_and_tls_1_3_are_accepted(https_server, deployment, version):
    """§8.2.2 #2: TLS 1.2 must be accepted, TLS 1.3 should be."""
    negotiated, _ = handshake(https_server, tls_client(deployment.cert, minimum=version, maximum=version))
    assert negotiated == {"TLSv1_2": "TLSv1.2", "TLSv1_3": "TLSv1.3"}[version.name]


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
@pytest.mark.parametrize("version", ["TLSv1", "TLSv1_1"], ids=["TLS 1.0", "TLS 1.1"])
def test_tls_older_than_1_2_is_refused_by_the_server_during_the_handshake(https_server, version):
    """§8.2.2 #2. The client offers the old version (its own security level lowered so that it
    can), and the server answers with a protocol_version alert."""
    old = getattr(ssl.TLSVersion, version)
    client = tls_client(minimum=old, maximum=old, ciphers="DEFAULT:@SECLEVEL=0")
    assert refused_reason(https_server, client) == "TLSV1_ALERT_PROTOCOL_VERSION"


def test_tls_1_2_with_a_blacklisted_cipher_suite_is_refused(https_server):
    """§8.2.2 #4: no TLS 1.2 suite from RFC 7540 Appendix A (here: CBC suites without AEAD)."""
    client = tls_client(maximum=ssl.TLSVersion.TLSv1_2,
                        ciphers="ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384:ECDHE-ECDSA-AES128-SHA")
    assert refused_reason(https_server, client) in {"SSLV3_ALERT_HANDSHAKE_FAILURE", "TLSV1_ALERT_HANDSHAKE_FAILURE"}


def test_tls_1_2_with_an_aead_suite_is_accepted(https_server):
    client = tls_client(maximum=ssl.TLSVersion.TLSv1_2, ciphers="ECDHE-ECDSA-AES128-GCM-SHA256")
    assert handshake(https_server, client) == ("TLSv1.2", "ECDHE-ECDSA-AES128-GCM-SHA256")


def test_plain_http_on_the_https_port_gets_no_answer(https_server):
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://127.0.0.1:{https_server.port}/taxii2/", headers={"Accept": TAXII}, timeout=10)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command line tool")
def test_tls_1_3_session_tickets_allow_no_early_data(https_server, deployment, tmp_path):
    """§8.2.2 #3: no TLS 1.3 0-RTT. A client may send early data only when the server's session
    ticket allows it: openssl's client keeps the ticket, and it allows none."""
    session = tmp_path / "session.pem"
    request = b"GET /taxii2/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    talk = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{https_server.port}", "-tls1_3",
                           "-CAfile", str(deployment.cert), "-sess_out", str(session), "-ign_eof"],
                          input=request, capture_output=True, timeout=60, check=False)
    assert b"HTTP/1.1 401" in talk.stdout, talk.stdout + talk.stderr
    ticket = subprocess.run(["openssl", "sess_id", "-in", str(session), "-text", "-noout"],
                            capture_output=True, text=True, check=True).stdout
    assert "Protocol  : TLSv1.3" in ticket and "TLS session ticket:" in ticket
    assert "Max Early Data: 0" in ticket


# --- serve's TLS options --------------------------------------------------------------------------------

def serve_options(deployment: Deployment, *args: str):
    return CliRunner().invoke(main, ["serve", "--config", str(deployment.config), *args],
                              env={name: None for name in OVERRIDES})


@pytest.mark.parametrize("which", ["--tls-cert", "--tls-key"])
def test_serve_wants_both_the_certificate_and_the_key(deployment, which):
    path = deployment.cert if which == "--tls-cert" else deployment.key
    refused = serve_options(deployment, which, str(path))
    assert refused.exit_code == 2 and "both --tls-cert and --tls-key" in refused.output


def test_serve_refuses_a_key_that_does_not_belong_to_the_certificate(deployment, tmp_path):
    assert dev_cert(tmp_path).exit_code == 0
    refused = serve_options(deployment, "--tls-cert", str(deployment.cert), "--tls-key", str(tmp_path / "key.pem"))
    assert refused.exit_code == 1 and "cannot use certificate" in refused.output
