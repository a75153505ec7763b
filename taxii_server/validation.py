"""Incoming STIX 2.1 content: body -> objects -> validated versions or per-object failures.

Each object is checked with the stix2 library (every property of every
STIX 2.1 type, patterns included) plus the rules stix2 leaves out. Valid
objects become `NewVersion`s; invalid ones become failures with a message
saying what is wrong, and never stop the valid ones of the same request.

Building stix2 objects is slow (about a millisecond each), so the common
object types first go through fast_validation, which proves most valid
objects valid without stix2 and hands everything else, valid or not, to
stix2: the verdicts are stix2's either way.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

import orjson
import stix2
from stix2.base import _Observable
from stix2.registry import class_for_type
from stix2.v21 import Bundle
from stix2.v21.observables import File
from stix2.v21.sdo import Grouping

from . import fast_validation
from .bounded_work import ValidationClock, pattern_problem
from .config import WorkLimits
from .errors import unprocessable
from .json_types import json_type_problem
from .storage.base import NewVersion
from .timestamps import TimestampError, parse_timestamp

SPEC_VERSION = "2.1"
_CUSTOM_TYPE = re.compile(r"^[a-z0-9][a-z0-9-]{1,248}[a-z0-9]$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


@dataclass(frozen=True)
class Rejected:
    object_id: str
    version: str
    message: str


def objects_from_body(body: bytes) -> list[dict]:
    """A TAXII envelope or a STIX bundle -> its list of objects (422 if neither)."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise unprocessable(f"The body is not valid JSON: {exc}.") from None
    if not isinstance(document, dict):
        raise unprocessable("The body must be a TAXII envelope: a JSON object with an 'objects' list.")
    objects = document.get("objects")
    if not isinstance(objects, list) or not objects:
        raise unprocessable("The envelope must have an 'objects' list with at least one STIX object.")
    for index, item in enumerate(objects):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not isinstance(item.get("type"), str):
            raise unprocessable(f"objects[{index}] is not a STIX object with string 'type' and 'id' properties; "
                                "nothing from this request was stored.")
    return _with_exact_wide_integers(body, objects)


# An integer of fewer digits fits in 64 bits; orjson reads wider ones as floats. A JSON
# number starts after ":", "[", "," or white space (its "-" included); a run of digits
# after anything else is inside a string (a file hash, an id), which orjson keeps exactly.
_LONG_DIGIT_RUN = re.compile(rb"[:\[,\s]\s*-?[0-9]{19,}")
_INT64_MIN, _UINT64_MAX = -(2 ** 63), 2 ** 64 - 1


def _with_exact_wide_integers(body: bytes, objects: list[dict]) -> list[dict]:
    """`objects`, where each object holding an integer wider than 64 bits is
    replaced by a copy holding it exactly, so that it is refused rather than
    stored as a float that compares equal to other integers. The body is read
    again (by the standard library, which keeps integers exact) only when it
    has a run of digits that long somewhere."""
    if not _LONG_DIGIT_RUN.search(body):
        return objects
    try:
        exact = json.loads(body)["objects"]
    except RecursionError:
        raise unprocessable("The body is nested too deeply.") from None
    return [precise if _has_wide_integer(precise) else item for item, precise in zip(objects, exact)]


def _has_wide_integer(value) -> bool:
    pending = [value]
    while pending:
        value = pending.pop()
        if type(value) is int and not _INT64_MIN <= value <= _UINT64_MAX:
            return True
        if type(value) is dict:
            pending.extend(value.values())
        elif type(value) is list:
            pending.extend(value)
    return False


def check_objects(items: list[dict], limits: WorkLimits) -> list[NewVersion | Rejected]:
    """Validate a request's objects within its work limits (bounded_work.py):
    each pattern measured before it is parsed, and none validated once the
    request's validation time is spent."""
    clock = ValidationClock(limits.validation_seconds)
    checked: list[NewVersion | Rejected] = []
    for item in items:
        problem = clock.refusal() if clock.spent() else pattern_problem(item, limits)
        checked.append(Rejected(item["id"], _claimed_version(item), problem) if problem else check_object(item))
    return checked


def check_object(item: dict, fast: bool = True) -> NewVersion | Rejected:
    """Validate one STIX 2.1 object (`fast=False`: with stix2 alone, for comparison)."""
    problem = _problem(item, fast)
    if problem:
        return Rejected(item["id"], _claimed_version(item), problem)
    try:
        # Stored with sorted keys: one serialisation serves as both the body and the
        # canonical form whose hash recognises an exact duplicate whatever its key order.
        canonical = orjson.dumps(item, option=orjson.OPT_SORT_KEYS)
        # orjson's result keeps an allocation of at least 8 KiB however short it is: a copy
        # of the exact size keeps an envelope of 10,000 small objects from taking 80 MB.
        canonical = bytes(memoryview(canonical))
    except orjson.JSONEncodeError as exc:
        if _has_wide_integer(item):
            return Rejected(item["id"], _claimed_version(item),
                            "The object holds an integer outside the 64-bit range (-2^63 to 2^64-1), which this "
                            "server cannot store exactly; send it as a string.")
        # orjson reads 1024 levels of nesting but writes only 254
        return Rejected(item["id"], _claimed_version(item), f"The object is nested too deeply to store: {exc}.")
    version = item.get("modified") or item.get("created")
    return NewVersion(
        object_id=item["id"],
        type=item["type"],
        version=version,
        version_key=parse_timestamp(version) if version else None,
        spec_version=item.get("spec_version", SPEC_VERSION),
        content_hash=hashlib.sha256(canonical).digest(),
        body=canonical,
    )


def _problem(item: dict, fast: bool = True) -> str | None:
    spec_version = item.get("spec_version")
    if spec_version is not None and spec_version != SPEC_VERSION:
        return f"spec_version {spec_version!r} is not supported: this server stores STIX 2.1 objects."
    stix_class = _registered_class(item["type"])
    if stix_class is None:
        return _custom_object_problem(item) or _timestamp_problem(item)
    if stix_class is Bundle:
        return "a bundle cannot be stored as an object; send its objects instead."
    if spec_version is None and not issubclass(stix_class, _Observable):
        return f"spec_version is required on a {item['type']} object and must be '2.1'."
    if not (fast and fast_validation.proves_valid(item)):
        problem = stix2_problem(item)
        if problem:
            return problem
    return _timestamp_problem(item)


def stix2_problem(item: dict) -> str | None:
    """What stix2 finds wrong with an object of a registered type, or None:
    the verdict fast_validation must agree with."""
    # JSON types first: stix2 would coerce some ill-typed values rather than refuse them.
    problem = json_type_problem(item, _registered_class(item["type"])._properties)
    if problem:
        return problem
    try:
        stix2.parse(item, allow_custom=True, version=SPEC_VERSION)
    except Exception as exc:  # stix2 raises many types; each is a reason to reject the object
        return f"Invalid STIX 2.1 object: {exc}"
    return None


def _registered_class(kind: str):
    # The classes stix2.parse builds; class_for_type without a category would also
    # return marking and extension classes (tlp, archive-ext...), which parse passes through unchecked.
    return class_for_type(kind, SPEC_VERSION, "objects") or class_for_type(kind, SPEC_VERSION, "observables")


def _custom_object_problem(item: dict) -> str | None:
    # stix2 passes unregistered (custom) types through unchecked: hold them to the common rules.
    kind = item["type"]
    if not _CUSTOM_TYPE.match(kind):
        return f"type {kind!r} is not a valid STIX type name (a-z, 0-9 and '-', 3 to 250 characters)."
    prefix, _, suffix = item["id"].partition("--")
    if prefix != kind or not _UUID.match(suffix):
        return f"id {item['id']!r} must be '{kind}--' followed by a UUID."
    if item.get("spec_version") is None:
        return f"spec_version is required on a custom {kind} object and must be '2.1'."
    return _common_properties_problem(item)


# The properties STIX 2.1 gives every object (§3.2), as stix2 defines them: an
# SDO's, and `defanged` from the observables. Custom types get no stix2 class of
# their own, so these are what hold them to the specification (`created` and
# `modified` are held to the stricter _timestamp_problem, as on every type).
_COMMON_PROPERTIES = {
    **{name: prop for name, prop in Grouping._properties.items()
       if name in ("created_by_ref", "revoked", "labels", "confidence", "lang",
                   "external_references", "object_marking_refs", "granular_markings", "extensions")},
    "defanged": File._properties["defanged"],
}


def _common_properties_problem(item: dict) -> str | None:
    problem = json_type_problem(item, _COMMON_PROPERTIES)
    if problem:
        return problem
    for name, prop in _COMMON_PROPERTIES.items():
        if name in item:
            try:
                prop.clean(item[name], True)
            except Exception as exc:  # stix2 raises many types; each is a reason to reject the object
                return f"Invalid value for the common property {name!r}: {exc}"
    return None


# STIX 2.1 §3.2: YYYY-MM-DDTHH:mm:ss[.s+]Z, in UTC with "Z"; stix2 reads at most six fraction digits.
_STIX_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?Z")


def _timestamp_problem(item: dict) -> str | None:
    stamps = {}
    for name in ("created", "modified"):
        if name in item:
            text = item[name]
            try:
                stamps[name] = parse_timestamp(text) if type(text) is str and _STIX_TIMESTAMP.fullmatch(text) else None
            except TimestampError:
                stamps[name] = None
            if stamps[name] is None:
                return (f"{name} must be a STIX timestamp in UTC such as 2026-01-31T12:00:00.000Z: upper-case T "
                        "and Z, no offset, at most six digits after the second.")
    if "created" in stamps and "modified" in stamps and stamps["modified"] < stamps["created"]:
        return "modified must not be earlier than created."
    return None


def _claimed_version(item: dict) -> str:
    for name in ("modified", "created"):
        if isinstance(item.get(name), str):
            return item[name]
    return "unknown"
