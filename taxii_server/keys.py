"""API keys: issuing, hashing and verifying.

A key reads `tx_<key id>_<secret>`. The key id is public and finds the
record; the secret is never stored, only its HMAC-SHA256 under the server
secret, so a copy of the database alone cannot be used to test guesses.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from .storage.base import ApiKeyRecord, Store
from .timestamps import now_micros

KEY_PATTERN = re.compile(r"^tx_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class IssuedKey:
    record: ApiKeyRecord
    raw_key: str  # shown once, never stored


def issue_key(store: Store, server_secret: bytes, operator_id: str,
              expires: int | None = None, label: str = "") -> IssuedKey:
    key_id = secrets.token_hex(6)
    raw_key = f"tx_{key_id}_{secrets.token_urlsafe(32)}"
    record = ApiKeyRecord(key_id=key_id, operator_id=operator_id, secret_hash=hash_key(server_secret, raw_key),
                          created=now_micros(), expires=expires, label=label)
    store.add_key(record)
    return IssuedKey(record=record, raw_key=raw_key)


@dataclass(frozen=True)
class Rotation:
    issued: IssuedKey
    retired_key_ids: list[str]  # keys whose expiry was brought forward to `retire_at`
    retire_at: int


def rotate_keys(store: Store, server_secret: bytes, operator_id: str, grace: int,
                key_id: str | None = None, label: str = "") -> Rotation:
    """Issue a new key and let the operator's active keys (or only `key_id`)
    expire `grace` microseconds from now, time enough to move its tools over."""
    now = now_micros()
    retire_at = now + grace
    retiring = [record for record in store.list_keys(operator_id)
                if (key_id is None or record.key_id == key_id) and is_active(record, now)
                and (record.expires is None or record.expires > retire_at)]
    issued = issue_key(store, server_secret, operator_id, label=label)
    for record in retiring:
        store.set_key_expiry(record.key_id, retire_at)
    return Rotation(issued, [record.key_id for record in retiring], retire_at)


def is_active(record: ApiKeyRecord, now: int) -> bool:
    return record.revoked is None and (record.expires is None or record.expires > now)


def hash_key(server_secret: bytes, raw_key: str) -> str:
    return hmac.new(server_secret, raw_key.encode(), hashlib.sha256).hexdigest()


def key_id_of(raw_key: str) -> str | None:
    match = KEY_PATTERN.match(raw_key)
    return match.group(1) if match else None


def verify_key(store: Store, server_secret: bytes, raw_key: str, now: int) -> ApiKeyRecord | None:
    """The key's record when the key is genuine, unrevoked and unexpired; else None."""
    key_id = key_id_of(raw_key)
    if key_id is None:
        return None
    record = store.get_key(key_id)
    # Hash even when the record is missing, so timing does not reveal which key ids exist.
    expected = record.secret_hash if record else hash_key(server_secret, "tx_000000000000_" + "0" * 43)
    genuine = hmac.compare_digest(expected, hash_key(server_secret, raw_key))
    if record is None or not genuine:
        return None
    if record.revoked is not None and record.revoked <= now:
        return None
    if record.expires is not None and record.expires <= now:
        return None
    return record
