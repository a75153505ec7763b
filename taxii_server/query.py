"""Request arguments -> a validated storage query, and signed paging cursors.

Every filter is checked here; anything malformed is a 400 before storage is
touched. A `next` token carries the last `date_added` of the page it ends,
bound by HMAC to the query and the caller that produced it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass, replace

import orjson

from .errors import bad_request
from .storage.base import ObjectQuery, VersionFilter
from .timestamps import TimestampError, parse_timestamp

LISTING_FILTERS = ("added_after", "limit", "next", "match[id]", "match[type]", "match[version]", "match[spec_version]")
ENDPOINT_FILTERS = {
    "objects": LISTING_FILTERS,
    "manifest": LISTING_FILTERS,
    "object": ("added_after", "limit", "next", "match[version]", "match[spec_version]"),
    "versions": ("added_after", "limit", "next", "match[spec_version]"),
    "delete": ("match[version]", "match[spec_version]"),
}
KNOWN_FILTERS = frozenset(LISTING_FILTERS)

_STIX_ID = re.compile(r"^[a-z0-9][a-z0-9-]*--[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_STIX_TYPE = re.compile(r"^[a-z0-9][a-z0-9-]{1,248}[a-z0-9]$")
_SPEC_VERSION = re.compile(r"^[0-9]+\.[0-9]+$")


@dataclass(frozen=True)
class PageRequest:
    query: ObjectQuery
    fingerprint: str  # what a `next` token made from this request is bound to


def parse_filters(endpoint: str, args, *, collection_id: str, object_id: str | None, caller: str,
                  default_limit: int, max_limit: int, signer: "CursorSigner",
                  default_versions: VersionFilter | None = None) -> PageRequest:
    """Validate `args` (a werkzeug MultiDict) for `endpoint` and build the query."""
    allowed = ENDPOINT_FILTERS[endpoint]
    values: dict[str, str] = {}
    for name in args.keys():
        if name not in KNOWN_FILTERS:
            continue  # §3.4: unknown match fields and other parameters may be ignored
        if name not in allowed:
            raise bad_request(f"'{name}' is not supported on this endpoint.")
        given = args.getlist(name)
        if len(given) > 1:
            raise bad_request(f"'{name}' may appear only once.")
        values[name] = given[0]

    query = ObjectQuery(
        collection_id=collection_id,
        object_id=object_id,
        limit=_limit(values.get("limit"), default_limit, max_limit),
        ids=_listed(values, "match[id]", _STIX_ID, "a STIX identifier such as indicator--<uuid>"),
        types=_listed(values, "match[type]", _STIX_TYPE, "a STIX type name such as indicator"),
        versions=_versions(values.get("match[version]"), default_versions or VersionFilter.latest()),
        spec_versions=_listed(values, "match[spec_version]", _SPEC_VERSION, "a spec version such as 2.1"),
        added_after=_timestamp(values.get("added_after"), "added_after"),
    )
    fingerprint = _fingerprint(endpoint, caller, query)
    if "next" in values:
        query = replace(query, after_position=signer.open(values["next"], fingerprint))
    return PageRequest(query=query, fingerprint=fingerprint)


def _limit(text: str | None, default: int, maximum: int) -> int:
    if text is None:
        return default
    digits = text.lstrip("0")
    if not (text.isascii() and text.isdigit()) or not digits:  # isdigit alone admits '²', which int() refuses
        raise bad_request(f"limit must be a positive integer, not {text!r}.")
    if len(digits) > len(str(maximum)):  # clamp before int(), which refuses numbers of over 4300 digits
        return maximum
    return min(int(digits), maximum)


def _listed(values: dict, name: str, pattern: re.Pattern, what: str) -> tuple[str, ...]:
    if name not in values:
        return ()
    items = values[name].split(",")
    for item in items:
        if not pattern.fullmatch(item):  # not .match: "$" also matches before a trailing newline
            raise bad_request(f"{name}: {item!r} is not {what}.")
    return tuple(dict.fromkeys(items))


def _versions(text: str | None, default: VersionFilter) -> VersionFilter:
    if text is None:
        return default
    items = text.split(",")
    if len(set(items)) != len(items):
        raise bad_request("match[version] must not repeat a value.")
    if "all" in items:
        if len(items) > 1:
            raise bad_request("match[version]=all cannot be combined with other values.")
        return VersionFilter.every()
    exact = []
    for item in items:
        if item not in ("first", "last"):
            try:
                exact.append(parse_timestamp(item))
            except TimestampError:
                raise bad_request(f"match[version]: {item!r} is not first, last, all or a timestamp.") from None
    return VersionFilter(first="first" in items, last="last" in items, exact=tuple(exact))


def _timestamp(text: str | None, name: str) -> int | None:
    if text is None:
        return None
    try:
        return parse_timestamp(text)
    except TimestampError as exc:
        raise bad_request(f"{name}: {exc}") from None


def _fingerprint(endpoint: str, caller: str, query: ObjectQuery) -> str:
    # limit is left out: a client may change its page size between pages.
    material = orjson.dumps([endpoint, caller, query.collection_id, query.object_id, query.ids, query.types,
                             [query.versions.all, query.versions.first, query.versions.last, query.versions.exact],
                             query.spec_versions, query.added_after])
    return hashlib.sha256(material).hexdigest()[:32]


class CursorSigner:
    """Makes and opens `next` tokens: base64url(JSON position and fingerprint) + "." + HMAC."""

    def __init__(self, secret: bytes):
        self._key = hashlib.sha256(b"taxii-server paging cursor\0" + secret).digest()

    def make(self, position: int, fingerprint: str) -> str:
        payload = _b64(orjson.dumps({"p": position, "f": fingerprint}))
        return f"{payload}.{self._mac(payload)}"

    def open(self, token: str, fingerprint: str) -> int:
        payload, _, mac = token.partition(".")
        # compare_digest raises TypeError on non-ASCII text: such a token is simply not ours.
        if not mac or not token.isascii() or not hmac.compare_digest(mac, self._mac(payload)):
            raise bad_request("The 'next' token is not one this server issued.")
        try:
            content = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            position, bound_to = int(content["p"]), content["f"]
        except (binascii.Error, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
            raise bad_request("The 'next' token is malformed.") from None
        if bound_to != fingerprint:
            raise bad_request("The 'next' token belongs to a different query or caller: "
                              "repeat the original filters with it.")
        return position

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest()[:18])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
