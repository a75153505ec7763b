"""Request arguments -> a validated storage query, and signed paging cursors.

Every filter is checked here; anything malformed is a 400 before storage is
touched. A `next` token carries the last `date_added` of the page it ends and
the filters of its query, compactly, so that `next` alone continues the query
(as OpenCTI's connector and Elastic send it). It is signed by HMAC together with
what it is bound to: the endpoint, the caller, the collection and the object.
Match filters sent with it must be the token's; `added_after` sent with it is
one more lower bound (`_continued`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass

import orjson

from .errors import bad_request
from .storage.base import ObjectQuery, VersionFilter
from .timestamps import TimestampError, parse_added_after, parse_timestamp

LISTING_FILTERS = ("added_after", "limit", "next", "match[id]", "match[type]", "match[version]", "match[spec_version]")
ENDPOINT_FILTERS = {
    "objects": LISTING_FILTERS,
    "manifest": LISTING_FILTERS,
    "object": ("added_after", "limit", "next", "match[version]", "match[spec_version]"),
    "versions": ("added_after", "limit", "next", "match[spec_version]"),
    "delete": ("match[version]", "match[spec_version]"),
}
KNOWN_FILTERS = frozenset(LISTING_FILTERS)
# What selects the versions; `limit` and `next` only say how many and from where.
SELECTING_FILTERS = ("added_after", "match[id]", "match[type]", "match[version]", "match[spec_version]")
# A token carries its query's filters up to this size (JSON bytes); beyond it, only their digest,
# and the client must send the filters again with it. Keeps tokens short enough for a URL.
CARRIED_FILTERS_MAX = 480

_STIX_ID = re.compile(r"^[a-z0-9][a-z0-9-]*--[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_STIX_TYPE = re.compile(r"^[a-z0-9][a-z0-9-]{1,248}[a-z0-9]$")
_SPEC_VERSION = re.compile(r"^[0-9]+\.[0-9]+$")


@dataclass(frozen=True)
class PageRequest:
    query: ObjectQuery
    fingerprint: str  # what a `next` token made from this request is bound to: endpoint, caller, collection, object
    carried: dict  # the query's filters as its `next` tokens carry them (`_carried`)


@dataclass(frozen=True)
class Continuation:
    """What a `next` token holds: the position reached and the filters of its query."""

    position: int
    carried: dict


def parse_filters(endpoint: str, args, *, collection_id: str, object_id: str | None, caller: str,
                  default_limit: int, max_limit: int, signer: "CursorSigner",
                  default_versions: VersionFilter | None = None, max_bytes: int | None = None) -> PageRequest:
    """Validate `args` (a werkzeug MultiDict) for `endpoint` and build the query.

    With `next`, the filters come from the token; any the request repeats must
    be the token's (the page size may change)."""
    values = _single_values(endpoint, args)
    defaults = _default_filters(default_versions or VersionFilter.latest())
    given = {name: _PARSERS[name](values[name]) for name in SELECTING_FILTERS if name in values}
    fingerprint = _fingerprint(endpoint, caller, collection_id, object_id)
    position = None
    if "next" in values:
        continuation = signer.open(values["next"], fingerprint)
        filters, position = _continued(continuation.carried, given, defaults), continuation.position
    else:
        filters = {**defaults, **given}
    query = ObjectQuery(
        collection_id=collection_id,
        object_id=object_id,
        limit=_limit(values.get("limit"), default_limit, max_limit),
        ids=filters["match[id]"],
        types=filters["match[type]"],
        versions=filters["match[version]"],
        spec_versions=filters["match[spec_version]"],
        added_after=filters["added_after"],
        after_position=position,
        max_bytes=max_bytes,
    )
    return PageRequest(query=query, fingerprint=fingerprint, carried=_carried(filters, defaults))


def _single_values(endpoint: str, args) -> dict[str, str]:
    """The known filters of `args`, each given at most once, all allowed on `endpoint`."""
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
    return values


def _default_filters(versions: VersionFilter) -> dict:
    return {"added_after": None, "match[id]": (), "match[type]": (), "match[version]": versions,
            "match[spec_version]": ()}


def _limit(text: str | None, default: int, maximum: int) -> int:
    if text is None:
        return default
    digits = text.lstrip("0")
    if not (text.isascii() and text.isdigit()) or not digits:  # isdigit alone admits '²', which int() refuses
        raise bad_request(f"limit must be a positive integer, not {text!r}.")
    if len(digits) > len(str(maximum)):  # clamp before int(), which refuses numbers of over 4300 digits
        return maximum
    return min(int(digits), maximum)


def _listed(name: str, pattern: re.Pattern, what: str):
    def parse(text: str) -> tuple[str, ...]:
        items = text.split(",")
        for item in items:
            if not pattern.fullmatch(item):  # not .match: "$" also matches before a trailing newline
                raise bad_request(f"{name}: {item!r} is not {what}.")
        return tuple(dict.fromkeys(items))
    return parse


def _versions(text: str) -> VersionFilter:
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


def _added_after(text: str) -> int:
    try:
        return parse_added_after(text)
    except TimestampError as exc:
        raise bad_request(f"added_after: {exc}") from None


_PARSERS = {
    "added_after": _added_after,
    "match[id]": _listed("match[id]", _STIX_ID, "a STIX identifier such as indicator--<uuid>"),
    "match[type]": _listed("match[type]", _STIX_TYPE, "a STIX type name such as indicator"),
    "match[version]": _versions,
    "match[spec_version]": _listed("match[spec_version]", _SPEC_VERSION, "a spec version such as 2.1"),
}


# -- what a `next` token carries ---------------------------------------------------------------------------------

# One letter per filter in a token.
_SHORT_NAMES = {"match[id]": "i", "match[type]": "t", "match[version]": "v", "match[spec_version]": "s"}
_ADDED_AFTER, _DIGEST = "a", "d"
# The filters that must stay the same from page to page; `added_after` is a lower bound, like the position.
MATCHING_FILTERS = tuple(_SHORT_NAMES)


def _carried(filters: dict, defaults: dict) -> dict:
    """The filters that differ from the endpoint's defaults, compactly; the match filters
    by their digest alone when they are too long to travel in a URL."""
    carried = {_SHORT_NAMES[name]: _encoded(name, filters[name]) for name in MATCHING_FILTERS
               if _canonical(name, filters[name]) != _canonical(name, defaults[name])}
    if len(orjson.dumps(carried)) > CARRIED_FILTERS_MAX:
        carried = {_DIGEST: _digest(filters)}
    if filters["added_after"] is not None:
        carried[_ADDED_AFTER] = filters["added_after"]
    return carried


def _continued(carried: dict, given: dict, defaults: dict) -> dict:
    """The filters of the query a token continues. Match filters the request repeats must
    be the token's. An `added_after` it sends is one more lower bound: the page starts
    after the later of it and the token's position. (OpenCTI's connector keeps the last
    `next` of a poll and sends it with its new `added_after` on its next run.)"""
    filters = dict(defaults)
    if _DIGEST in carried:
        filters.update((name, value) for name, value in given.items() if name in MATCHING_FILTERS)
        if not hmac.compare_digest(_digest(filters), str(carried[_DIGEST])):
            raise bad_request("This query's filters are too long to travel in its 'next' token: "
                              "send them again with it, unchanged.")
    for name, short in _SHORT_NAMES.items():
        if short in carried:
            filters[name] = _decoded(name, carried[short])
    for name, value in given.items():
        if name in MATCHING_FILTERS and _canonical(name, value) != _canonical(name, filters[name]):
            raise bad_request(f"'{name}' differs from the query this 'next' token continues: "
                              "send it unchanged, or leave it out.")
    bounds = [bound for bound in (_decoded("added_after", carried.get(_ADDED_AFTER)), given.get("added_after"))
              if bound is not None]
    filters["added_after"] = max(bounds) if bounds else None
    return filters


def _encoded(name: str, value) -> list:
    if name == "match[version]":
        flags = [flag for flag in ("all", "first", "last") if getattr(value, flag)]
        return [*flags, *value.exact]
    return list(value)


def _decoded(name: str, value):
    try:
        if name == "added_after":
            return None if value is None else int(value)
        if name == "match[version]":
            flags = [item for item in value if isinstance(item, str)]
            return VersionFilter(all="all" in flags, first="first" in flags, last="last" in flags,
                                 exact=tuple(int(item) for item in value if not isinstance(item, str)))
        return tuple(str(item) for item in value)
    except (TypeError, ValueError):
        raise bad_request("The 'next' token is malformed.") from None


def _canonical(name: str, value) -> list:
    """A match filter's value with the order of its items left out: `a,b` selects what `b,a` does."""
    if name == "match[version]":
        return [value.all, value.first, value.last, sorted(value.exact)]
    return sorted(value)


def _digest(filters: dict) -> str:
    canonical = [_canonical(name, filters[name]) for name in MATCHING_FILTERS]
    return hashlib.sha256(orjson.dumps(canonical)).hexdigest()[:32]


def _fingerprint(endpoint: str, caller: str, collection_id: str, object_id: str | None) -> str:
    return hashlib.sha256(orjson.dumps([endpoint, caller, collection_id, object_id])).hexdigest()[:32]


class CursorSigner:
    """Makes and opens `next` tokens: base64url(JSON [position, carried filters]) + "." + HMAC.

    The HMAC covers the payload and the fingerprint of what the token is bound
    to, so the binding costs the token no length."""

    def __init__(self, secret: bytes):
        self._key = hashlib.sha256(b"taxii-server paging cursor\0" + secret).digest()

    def make(self, position: int, fingerprint: str, carried: dict | None = None) -> str:
        payload = _b64(orjson.dumps([position, carried] if carried else [position]))
        return f"{payload}.{self._mac(payload, fingerprint)}"

    def open(self, token: str, fingerprint: str) -> Continuation:
        payload, _, mac = token.partition(".")
        # compare_digest raises TypeError on non-ASCII text: such a token is simply not ours.
        if not mac or not token.isascii() or not hmac.compare_digest(mac, self._mac(payload, fingerprint)):
            raise bad_request("The 'next' token is not one this server issued to this caller for this collection "
                              "and endpoint.")
        try:
            content = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            position, carried = content[0], (content[1] if len(content) > 1 else {})
        except (binascii.Error, ValueError, KeyError, IndexError, TypeError, orjson.JSONDecodeError):
            raise bad_request("The 'next' token is malformed.") from None
        if type(position) is not int or not isinstance(carried, dict):
            raise bad_request("The 'next' token is malformed.")
        return Continuation(position, carried)

    def _mac(self, payload: str, fingerprint: str) -> str:
        signed = f"{fingerprint}\0{payload}".encode()
        return _b64(hmac.new(self._key, signed, hashlib.sha256).digest()[:18])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
