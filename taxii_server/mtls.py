"""Client certificates (mutual TLS): an operator identified by the SHA-256
fingerprint of a certificate registered with `taxii-server certs register`.

A certificate reaches the application in one of two ways:

- The server terminates TLS itself (`serve --tls-client-ca FILE`, or
  deploy/gunicorn.tls.conf.py with TAXII_TLS_CLIENT_CA): the handshake verified
  the certificate against that file, and the gunicorn worker
  (`taxii_server.server.ClientCertificateWorker`) puts it in the WSGI environ
  under `SSL_CLIENT_CERT` as PEM, the name Apache's mod_ssl and werkzeug use.
  Nothing a client sends can set an environ key: headers arrive as HTTP_*.
- A reverse proxy verified it and forwards it URL-encoded (nginx's
  `$ssl_client_escaped_cert`) in the header named by `mtls.proxy_header`. That
  header is read only on connections from `mtls.trusted_proxies`; from anywhere
  else it is ignored, since any client could send it.

A certificate identifies nobody until it is registered, and nobody once its
registration is revoked or the certificate has expired.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from .config import Settings
from .storage.base import ClientCertRecord, Store

ENVIRON_KEY = "SSL_CLIENT_CERT"
FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")


class CertificateError(ValueError):
    """A certificate that cannot be read, registered or accepted; the message says why."""


def load_pem(data: bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        raise CertificateError("not a PEM-encoded X.509 certificate") from None


def fingerprint(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex()


def normalise_fingerprint(text: str) -> str:
    """Accept `openssl x509 -fingerprint -sha256` output (AB:CD:...) as well as plain hex."""
    return text.strip().replace(":", "").lower()


def expiry_micros(certificate: x509.Certificate) -> int:
    return int(certificate.not_valid_after_utc.timestamp()) * 1_000_000


def register(store: Store, operator_id: str, pem: bytes, now: int, label: str = "") -> ClientCertRecord:
    certificate = load_pem(pem)
    record = ClientCertRecord(fingerprint=fingerprint(certificate), operator_id=operator_id,
                              subject=certificate.subject.rfc4514_string(), created=now,
                              expires=expiry_micros(certificate), label=label)
    if record.expires <= now:
        raise CertificateError(f"the certificate expired on {certificate.not_valid_after_utc:%Y-%m-%d}")
    if not store.add_client_cert(record):
        existing = store.find_client_cert(record.fingerprint)
        state = " (revoked: a revoked certificate cannot be registered again)" if existing.revoked else ""
        raise CertificateError(f"certificate {record.fingerprint} is already registered "
                               f"for {existing.operator_id}{state}")
    return record


def presented_certificate(environ: dict, settings: Settings) -> x509.Certificate | None:
    """The client certificate this request carries, or None."""
    mtls = settings.mtls
    if mtls is not None and mtls.trusts(environ.get("REMOTE_ADDR")):
        forwarded = environ.get("HTTP_" + mtls.proxy_header.upper().replace("-", "_"))
        if forwarded:
            # unquote, not unquote_plus: base64 has "+", and nginx may leave it unescaped.
            return load_pem(unquote(forwarded).encode())
    own = environ.get(ENVIRON_KEY)
    return load_pem(own.encode()) if own else None


def registered_certificate(environ: dict, settings: Settings, store: Store, now: int) -> ClientCertRecord | None:
    """The registration of the request's client certificate; None when there is no
    certificate; CertificateError when there is one that identifies nobody."""
    certificate = presented_certificate(environ, settings)
    if certificate is None:
        return None
    record = store.find_client_cert(fingerprint(certificate))
    if record is None or record.revoked is not None or (record.expires is not None and record.expires <= now):
        raise CertificateError(f"certificate {fingerprint(certificate)[:12]} is not registered, "
                               "or its registration was revoked or has expired")
    return record
