"""Authentication: request credentials -> Principal (operator and key id).

Accepted schemes, all carrying an API key:
- HTTP Basic, user = operator id, password = key (Microsoft Sentinel, many TIPs);
- `Authorization: Bearer <key>`;
- `Authorization: Token <key>` (taxii2-client's TokenAuth).
Without an Authorization header, a registered client certificate (mtls.py)
identifies its operator instead.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass

from flask import has_request_context, request

from . import mtls
from .config import Operator, Settings
from .errors import TaxiiError
from .keys import key_id_of, verify_key
from .storage.base import Store, StoreBusy
from .timestamps import now_micros

log = logging.getLogger(__name__)

CHALLENGES = 'Basic realm="taxii", charset="UTF-8", Bearer realm="taxii"'
# Writing last-used on every poll would turn each read into a write.
LAST_USED_RESOLUTION = 60 * 1_000_000


@dataclass(frozen=True)
class Principal:
    operator: Operator
    key_id: str


def authenticate(authorization: str | None, settings: Settings, store: Store) -> Principal:
    if not authorization:
        principal = _certificate_principal(settings, store)
        if principal is not None:
            return principal
    claimed_operator, raw_key = _credentials(authorization)
    now = now_micros()
    record = verify_key(store, settings.secret, raw_key, now)
    operator = settings.operators.get(record.operator_id) if record else None
    if record is None or operator is None or (claimed_operator is not None and claimed_operator != operator.id):
        log.info("authentication failed (key id %s)", _key_id_for_log(raw_key))
        raise unauthorized("The API key is unknown, revoked or expired.")
    if record.last_used is None or now - record.last_used > LAST_USED_RESOLUTION:
        try:
            store.touch_key(record.key_id, now)
        except StoreBusy:  # last use is for people reading `keys list`: a read need not wait for it
            log.info("key %s: last use not recorded, the store is busy", record.key_id)
    return Principal(operator=operator, key_id=record.key_id)


def _certificate_principal(settings: Settings, store: Store) -> Principal | None:
    """The operator of the request's registered client certificate; None when it has none."""
    try:
        record = (mtls.registered_certificate(request.environ, settings, store, now_micros())
                  if has_request_context() else None)
    except mtls.CertificateError as refused:
        log.info("authentication failed (client certificate: %s)", refused)  # names a public fingerprint at most
        raise unauthorized(f"Client certificate refused: {refused}.") from None
    if record is None:
        return None
    operator = settings.operators.get(record.operator_id)
    if operator is None:
        log.info("authentication failed (client certificate %s of unknown operator)", record.fingerprint[:12])
        raise unauthorized("The client certificate's operator is not configured.")
    return Principal(operator=operator, key_id=f"cert:{record.fingerprint[:12]}")


def unauthorized(description: str) -> TaxiiError:
    return TaxiiError(401, "Authentication required", description, {"WWW-Authenticate": CHALLENGES})


def _credentials(authorization: str | None) -> tuple[str | None, str]:
    if not authorization:
        raise unauthorized("Send an API key: HTTP Basic (user = operator id, password = key), "
                           "'Authorization: Bearer <key>' or 'Authorization: Token <key>'.")
    scheme, _, value = authorization.strip().partition(" ")
    scheme, value = scheme.lower(), value.strip()
    if scheme in ("bearer", "token") and value:
        return None, value
    if scheme == "basic" and value:
        try:
            user, separator, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
        except ValueError:  # binascii.Error, UnicodeDecodeError, and non-ASCII text given to b64decode
            raise unauthorized("The Basic credentials are not valid base64 'user:password'.") from None
        if separator:
            return user, password
    raise unauthorized("Unsupported Authorization header: use Basic, Bearer or Token.")


def _key_id_for_log(raw_key: str) -> str:
    # Only the public key id part is ever logged, never the secret.
    return key_id_of(raw_key) or "malformed"


def presented_key_id(authorization: str | None) -> str | None:
    """The public key id in an Authorization header, for the audit trail of a
    failed attempt; None when there is none to read. Never the secret."""
    try:
        _, raw_key = _credentials(authorization)
    except TaxiiError:
        return None
    return key_id_of(raw_key)
