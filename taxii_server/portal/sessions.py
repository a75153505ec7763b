"""Portal sign-in: an operator id and an API key, checked by keys.py as the
API checks it, then a session kept in the store.

The browser holds a random token in an HttpOnly, SameSite=Strict cookie
(Secure under HTTPS); the store keeps only the token's hash. Every request
reads the session and the key's record again, so a session ends on sign-out,
after the configured idle time, and from the very next request once its key
is revoked or expires, or its operator leaves config.yaml.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass

from flask import Response, request

from ..auth import LAST_USED_RESOLUTION, Principal
from ..config import Settings
from ..keys import is_active, key_id_of, verify_key
from ..limits import Limiter, Rate
from ..storage.base import PortalSession, Store
from ..timestamps import now_micros

log = logging.getLogger(__name__)

COOKIE = "taxii_portal_session"
COOKIE_PATH = "/portal"
# Recording activity on every page would make every page view a write.
_TOUCH_RESOLUTION = 60 * 1_000_000


@dataclass(frozen=True)
class SignedIn:
    principal: Principal
    session: PortalSession


class TooManyAttempts(Exception):
    """This client address used up its sign-in attempts for the minute."""


def sign_in(store: Store, limiter: Limiter, settings: Settings, operator_id: str,
            raw_key: str) -> tuple[str, PortalSession] | None:
    """A new session's token and record, or None when the key is not the operator's live key."""
    allowance = Rate(settings.portal_sign_ins_per_minute, settings.portal_sign_ins_per_minute)
    if limiter.admit(f"portal-sign-in:{request.remote_addr or ''}", allowance) is not None:
        raise TooManyAttempts()
    now = now_micros()
    record = verify_key(store, settings.secret, raw_key.strip(), now)
    if record is None or record.operator_id != operator_id or operator_id not in settings.operators:
        log.info("portal sign-in failed (key id %s)", key_id_of(raw_key.strip()) or "malformed")
        return None
    if record.last_used is None or now - record.last_used > LAST_USED_RESOLUTION:
        store.touch_key(record.key_id, now)
    token = secrets.token_urlsafe(32)
    session = PortalSession(token_hash=_hash(token), operator_id=operator_id, key_id=record.key_id, created=now,
                            last_seen=now, previous_visit=store.last_portal_visit(record.key_id))
    store.add_portal_session(session)
    return token, session


def current(store: Store, settings: Settings) -> SignedIn | None:
    """The request's live session, or None (and the session ended) when there is none."""
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    session = store.get_portal_session(_hash(token))
    if session is None or session.ended is not None:
        return None
    now = now_micros()
    key = store.get_key(session.key_id)
    operator = settings.operators.get(session.operator_id)
    idle = now - session.last_seen > settings.portal_idle_seconds * 1_000_000
    if idle or key is None or not is_active(key, now) or operator is None or key.operator_id != operator.id:
        store.end_portal_session(session.token_hash, now)
        return None
    if now - session.last_seen >= min(_TOUCH_RESOLUTION, settings.portal_idle_seconds * 250_000):
        store.touch_portal_session(session.token_hash, now)
    return SignedIn(Principal(operator=operator, key_id=key.key_id), session)


def sign_out(store: Store) -> None:
    token = request.cookies.get(COOKIE)
    if token:
        store.end_portal_session(_hash(token), now_micros())


def set_cookie(response: Response, token: str, settings: Settings) -> None:
    response.set_cookie(COOKIE, token, path=COOKIE_PATH, httponly=True, samesite="Strict",
                        secure=cookies_secure(settings))


def clear_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="Strict", secure=cookies_secure(settings))


def cookies_secure(settings: Settings) -> bool:
    """Secure over HTTPS; always, when configured so for HTTPS that a proxy in front ends."""
    return request.is_secure or settings.portal_secure_cookies


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
