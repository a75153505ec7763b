"""HTTPS: the server's TLS policy and self-signed development certificates.

TAXII 2.1 §8.2.2: TLS 1.2 or newer; no TLS 1.3 0-RTT (early data could be
replayed); and TLS 1.2 only with cipher suites off the RFC 7540 Appendix A
list, which leaves ephemeral key exchange with an AEAD cipher. `harden` sets
the minimum version and those suites; 0-RTT needs no setting because Python's
ssl module never enables early data (OpenSSL accepts none unless
`max_early_data` is raised, which the module does not expose).

`gunicorn_ssl_context` is gunicorn's `ssl_context` hook: `taxii-server serve
--tls-cert/--tls-key` and deploy/gunicorn.tls.conf.py both use it.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2
# TLS 1.2 suites. TLS 1.3 suites, all AEAD, are set apart by OpenSSL and stay as they are.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL:!aDSS"
DEV_CERT_FILE, DEV_KEY_FILE = "cert.pem", "key.pem"
DEFAULT_DEV_HOSTS = ("localhost", "127.0.0.1", "::1")


def harden(context: ssl.SSLContext, ciphers: bool = True) -> ssl.SSLContext:
    """Apply the server's TLS policy to a server-side context; `ciphers=False`
    keeps cipher suites an operator chose."""
    context.minimum_version = MINIMUM_VERSION
    if ciphers:
        context.set_ciphers(TLS12_CIPHERS)
    return context


def gunicorn_ssl_context(conf, default_ssl_context_factory) -> ssl.SSLContext:
    """gunicorn's `ssl_context` hook: its context (certificate, key, cert_reqs,
    ca_certs, ciphers from the configuration), with the policy above."""
    return harden(default_ssl_context_factory(), ciphers=not conf.ciphers)


@dataclass(frozen=True)
class TLSFiles:
    """What `serve` needs to speak HTTPS; `client_ca` also asks clients for a certificate."""

    cert: str
    key: str
    client_ca: str | None = None

    def check(self) -> None:
        """Load the files as the server will, failing with a readable message rather than at the first connection."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(self.cert, self.key)
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(f"cannot use certificate {self.cert} with key {self.key}: {exc}") from None
        if self.client_ca:
            try:
                context.load_verify_locations(cafile=self.client_ca)
            except (ssl.SSLError, OSError) as exc:
                raise ValueError(f"cannot read client CA file {self.client_ca}: {exc}") from None

    def gunicorn_options(self) -> dict:
        options = {"certfile": self.cert, "keyfile": self.key, "ssl_context": gunicorn_ssl_context}
        if self.client_ca:
            # Optional, not required: clients that authenticate with an API key send no certificate.
            options.update(ca_certs=self.client_ca, cert_reqs=ssl.CERT_OPTIONAL)
        return options


@dataclass(frozen=True)
class DevCertificate:
    cert_path: Path
    key_path: Path
    fingerprint: str  # SHA-256 of the certificate, hex


def write_dev_certificate(out_dir: str | os.PathLike, hosts: tuple[str, ...] = DEFAULT_DEV_HOSTS,
                          days: int = 365, overwrite: bool = False) -> DevCertificate:
    """A self-signed certificate for `hosts` (names or IP addresses) and its
    private key (P-256, file mode 0600) in `out_dir`. For development only:
    clients must be told to trust this very certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if not hosts:
        raise ValueError("name at least one host")
    folder = Path(out_dir)
    cert_path, key_path = folder / DEV_CERT_FILE, folder / DEV_KEY_FILE
    if not overwrite:
        for path in (cert_path, key_path):
            if path.exists():
                raise FileExistsError(f"{path} exists")

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "taxii-server development"),
                      x509.NameAttribute(NameOID.COMMON_NAME, hosts[0][:64])])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([_general_name(host) for host in hosts]), critical=False)
        # Its own trust anchor: clients load this file as their CA (requests' verify=, curl --cacert),
        # which strict X.509 checking accepts only from a CA certificate that may sign certificates.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False, key_agreement=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    _write_private(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return DevCertificate(cert_path, key_path, certificate.fingerprint(hashes.SHA256()).hex())


def _general_name(host: str):
    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _write_private(path: Path, data: bytes) -> None:
    """Write a file only its owner can read, never readable by others even for a moment."""
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        os.replace(draft, path)
    except BaseException:
        draft.unlink(missing_ok=True)
        raise
