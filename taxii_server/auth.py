"""Authentication: request credentials -> Principal (operator and key id).

Accepted schemes, all carrying an API key:
- HTTP Basic, user = operator id, password = key (Microsoft Sentinel, many TIPs);
- `Authorization: Bearer <key>`;
- `Authorization: Token <key>` (taxii2-client's TokenAuth).
"""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass

from .config import Operator, Settings
from .errors import TaxiiError
from .keys import key_id_of, verify_key
from .storage.base import Store
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
    claimed_operator, raw_key = _credentials(authorization)
    now = now_micros()
    record = verify_key(store, settings.secret, raw_key, now)
    operator = settings.operators.get(record.operator_id) if record else None
    if record is None or operator is None or (claimed_operator is not None and claimed_operator != operator.id):
        log.info("authentication failed (key id %s)", _key_id_for_log(raw_key))
        raise unauthorized("The API key is unknown, revoked or expired.")
    if record.last_used is None or now - record.last_used > LAST_USED_RESOLUTION:
        store.touch_key(record.key_id, now)
    return Principal(operator=operator, key_id=record.key_id)


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
        except (binascii.Error, UnicodeDecodeError):
            raise unauthorized("The Basic credentials are not valid base64 'user:password'.") from None
        if separator:
            return user, password
    raise unauthorized("Unsupported Authorization header: use Basic, Bearer or Token.")


def _key_id_for_log(raw_key: str) -> str:
    # Only the public key id part is ever logged, never the secret.
    return key_id_of(raw_key) or "malformed"
