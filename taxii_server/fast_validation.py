"""A fast path through STIX 2.1 validation for the common object types.

Building a stix2 object costs about a millisecond, half of it in the ANTLR
pattern parser. This module reaches the same verdict for the SDOs and SROs a
sharing community exchanges, without building anything: each type's property
checks are read from the stix2 class's own `_properties` (required
properties, value types, enumerations, reference types, id formats,
timestamps, list contents), its `_check_object_constraints` rules are written
out below, and patterns go to the fast pattern checker.

`proves_valid` answers True only when stix2 (held to the JSON types of
json_types.py, as validation.py holds it) would accept the object. False is
not a verdict: the caller then asks stix2, which rejects with its own message
or accepts a shape this module leaves to it (granular markings, hashes in
external references, deprecated `objects`, a non-canonical UUID...). So the
server accepts and rejects exactly what stix2 does, only faster;
tests/test_validation_agreement.py holds the two to that over a corpus.
"""

from __future__ import annotations

import calendar
import importlib.metadata
import re
from collections.abc import Callable

from stix2 import properties as P
from stix2.v21 import EXT_MAP, common, sdo, sro

from .pattern_checker import proves_valid as pattern_proves_valid

Check = Callable[[object], bool]
Constraint = Callable[[dict, set], bool]

# The versions whose code this module was checked against, property by
# property; with any other, everything goes to stix2.
VERIFIED_WITH = {"stix2": "3.0.", "stix2-patterns": "2."}

_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}"  # RFC 4122 variant
# A reference's UUID, canonical: stix2's uuid.UUID() also takes braces, "urn:uuid:"
# and hyphens anywhere, which are left to stix2.
_REFERENCE = re.compile(rf"([^-]*(?:-[^-]+)*)--({_UUID})")
# The timestamps stix2's strptime("%Y-%m-%dT%H:%M:%S[.%f]Z") reads, in canonical form.
_TIMESTAMP = re.compile(
    r"([0-9]{4})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?Z")
# Names stix2's constructors treat specially (their own keyword arguments, and
# `extensions`, read before any check): as custom properties, left to stix2.
_RESERVED_NAMES = frozenset({"self", "allow_custom", "interoperability", "custom_properties", "extensions"})


def proves_valid(item: dict) -> bool:
    """True if stix2 accepts this STIX 2.1 object. False: not proven, ask stix2."""
    kind = item.get("type")
    shape = _SHAPES.get(kind) if type(kind) is str else None
    return shape is not None and shape.accepts(item)


def covered_types() -> frozenset[str]:
    """The object types the fast path knows (empty with unverified library versions)."""
    return frozenset(_SHAPES)


class _Shape:
    """What stix2 accepts for one class: its declared properties, each with a
    check (None where this module leaves the property to stix2), the
    required ones, and the class's object constraints."""

    def __init__(self, stix_class, constraint: Constraint | None = None):
        properties = stix_class._properties
        self.checks = {name: _value_check(prop) for name, prop in properties.items()}
        self.lists = frozenset(name for name, prop in properties.items() if isinstance(prop, P.ListProperty))
        self.required = frozenset(name for name, prop in properties.items() if prop.required)
        self.constraint = constraint

    def accepts(self, values: dict) -> bool:
        present = set()
        checks = self.checks
        for name, value in values.items():
            if name not in checks:
                # A custom property: stix2 (allow_custom=True) wants only a name starting with a-z.
                if not "a" <= name[:1] <= "z" or name in _RESERVED_NAMES:
                    return False
                continue
            if type(value) is list and not value and name in self.lists:
                continue  # stix2 drops an empty list as if it were absent
            check = checks[name]
            if check is None or not check(value):
                return False
            present.add(name)
        if not self.required <= present:
            return False
        return self.constraint is None or self.constraint(values, present)


# -- property values ----------------------------------------------------------

def _value_check(prop: P.Property) -> Check | None:
    """A check equivalent to `prop.clean(value, allow_custom=True)` plus the
    JSON type of the value, or None for kinds left to stix2."""
    kind = type(prop)
    if hasattr(prop, "_fixed_value"):  # type, spec_version
        fixed = prop._fixed_value
        return lambda value: type(value) is str and value == fixed
    if kind is P.IDProperty:
        identifier = re.compile(re.escape(prop.required_prefix) + _UUID)
        return lambda value: type(value) is str and identifier.fullmatch(value) is not None
    if kind is P.ReferenceProperty:
        return _reference_check(prop)
    if kind is P.TimestampProperty:
        return _is_timestamp
    if kind in (P.StringProperty, P.OpenVocabProperty, P.PatternProperty):
        return _is_string
    if kind is P.EnumProperty:
        allowed = frozenset(prop.allowed)
        return lambda value: type(value) is str and value in allowed
    if kind is P.BooleanProperty:
        return lambda value: type(value) is bool
    if kind is P.IntegerProperty:
        return _number_check(prop, (int,))
    if kind is P.FloatProperty:
        return _number_check(prop, (int, float))
    if kind is P.ExtensionsProperty:
        return _extensions_ok
    if kind is P.ListProperty:
        contained = prop.contained
        element = _value_check(contained) if isinstance(contained, P.Property) else _embedded_check(contained)
        if element is None:
            return None
        return lambda value: type(value) is list and all(element(item) for item in value)
    return None  # dictionaries, hashes, observables, markings, selectors, binary, hex


def _is_string(value) -> bool:
    return type(value) is str


def _is_timestamp(value) -> bool:
    match = _TIMESTAMP.fullmatch(value) if type(value) is str else None
    if match is None:
        return False
    year, month, day = int(match[1]), int(match[2]), int(match[3])
    return year > 0 and (day <= 28 or day <= calendar.monthrange(year, month)[1])


def _instant(timestamp: str) -> tuple[str, int]:
    """A proven timestamp, as something that orders like the instant it names."""
    fraction = timestamp[20:-1]
    return timestamp[:19], int((fraction + "000000")[:6])


def _number_check(prop: P.Property, json_types: tuple[type, ...]) -> Check:
    minimum, maximum = prop.min, prop.max
    as_float = float in json_types  # stix2 compares float(value) for floats, int(value) for integers

    def check(value) -> bool:
        if type(value) not in json_types:  # `type`, not isinstance: true is no number
            return False
        if as_float:
            try:
                value = float(value)
            except OverflowError:
                return False
        return (minimum is None or value >= minimum) and (maximum is None or value <= maximum)
    return check


def _reference_check(prop: P.ReferenceProperty) -> Check:
    """Whether a reference is accepted depends only on the type before `--`
    once the UUID is canonical; stix2's own clean() decides, once per type."""
    verdicts: dict[str, bool] = {}
    sample_uuid = "00000000-0000-4000-8000-000000000000"

    def check(value) -> bool:
        match = _REFERENCE.fullmatch(value) if type(value) is str else None
        if match is None:
            return False
        referenced_type = match[1]
        verdict = verdicts.get(referenced_type)
        if verdict is None:
            try:
                prop.clean(f"{referenced_type}--{sample_uuid}", True)
                verdict = True
            except Exception:  # stix2 raises ValueError or CustomContentError
                verdict = False
            if len(verdicts) < 1000 and len(referenced_type) <= 250:  # types come from clients: bound the memo
                verdicts[referenced_type] = verdict
        return verdict
    return check


def _extensions_ok(value) -> bool:
    """Extension definitions by canonical id, and unregistered custom
    extensions, each an object; stix2 leaves their contents alone."""
    if type(value) is not dict:
        return False
    for key, extension in value.items():
        if type(extension) is not dict or key in EXT_MAP:
            return False
        if key.startswith("extension-definition--") and not _EXTENSION_DEFINITION.fullmatch(key):
            return False
    return True


_EXTENSION_DEFINITION = re.compile("extension-definition--" + _UUID)


def _embedded_check(stix_class) -> Check | None:
    """Items of a list of embedded objects (kill chain phases, external references)."""
    shape = _EMBEDDED.get(stix_class)
    if shape is None:
        return None  # granular markings: stix2 checks their selectors against the object
    return lambda value: type(value) is dict and shape.accepts(value)


# -- object constraints (each class's _check_object_constraints) ----------------

def _in_order(first: str, last: str, strictly: bool = False) -> Constraint:
    """`last` is not earlier than `first` (later, if strictly) when both are there."""
    def constraint(values: dict, present: set) -> bool:
        if first not in present or last not in present:
            return True
        start, end = _instant(values[first]), _instant(values[last])
        return end > start if strictly else end >= start
    return constraint


def _all_of(*constraints: Constraint) -> Constraint:
    return lambda values, present: all(constraint(values, present) for constraint in constraints)


def _external_reference_ok(values: dict, present: set) -> bool:
    return not present.isdisjoint(("description", "external_id", "url"))


_valid_period = _in_order("valid_from", "valid_until", strictly=True)


def _indicator_ok(values: dict, present: set) -> bool:
    if "valid_until" in present and "valid_from" not in present:
        return False  # stix2 would compare valid_until with the current time
    if not _valid_period(values, present):
        return False
    if values["pattern_type"] != "stix":
        return True
    # stix2 validates a stix pattern with the grammar of pattern_version, 2.1 when absent or empty.
    return values.get("pattern_version") in (None, "", "2.1") and bool(values["pattern"]) \
        and pattern_proves_valid(values["pattern"])


def _location_ok(values: dict, present: set) -> bool:
    has_latitude, has_longitude = "latitude" in present, "longitude" in present
    if has_latitude != has_longitude:
        return False
    if "precision" in present and not has_latitude:
        return False
    return "region" in present or "country" in present or has_latitude


def _malware_ok(values: dict, present: set) -> bool:
    return not values["is_family"] or "name" in present


def _malware_analysis_ok(values: dict, present: set) -> bool:
    return "result" in present or "analysis_sco_refs" in present


_relationship_period = _in_order("start_time", "stop_time", strictly=True)


def _relationship_ok(values: dict, present: set) -> bool:
    # stix2's Relationship takes relationship_type as a positional argument and
    # drops a falsy one, so "" counts as missing there.
    return values["relationship_type"] != "" and _relationship_period(values, present)


def _observed_data_ok(values: dict, present: set) -> bool:
    return "object_refs" in present  # one of objects (left to stix2) and object_refs


_EMBEDDED = {
    common.KillChainPhase: _Shape(common.KillChainPhase),
    common.ExternalReference: _Shape(common.ExternalReference, _external_reference_ok),
}

_COVERED = {
    sdo.AttackPattern: None,
    sdo.Campaign: _in_order("first_seen", "last_seen"),
    sdo.CourseOfAction: None,
    sdo.Grouping: None,
    sdo.Identity: None,
    sdo.Incident: None,
    sdo.Indicator: _indicator_ok,
    sdo.Infrastructure: _in_order("first_seen", "last_seen"),
    sdo.IntrusionSet: _in_order("first_seen", "last_seen"),
    sdo.Location: _location_ok,
    sdo.Malware: _all_of(_in_order("first_seen", "last_seen"), _malware_ok),
    sdo.MalwareAnalysis: _malware_analysis_ok,
    sdo.Note: None,
    sdo.ObservedData: _all_of(_in_order("first_observed", "last_observed"), _observed_data_ok),
    sdo.Opinion: None,
    sdo.Report: None,
    sdo.ThreatActor: _in_order("first_seen", "last_seen"),
    sdo.Tool: None,
    sdo.Vulnerability: None,
    sro.Relationship: _relationship_ok,
    sro.Sighting: _in_order("first_seen", "last_seen"),
}


def _verified_versions() -> bool:
    return all(importlib.metadata.version(package).startswith(prefix) for package, prefix in VERIFIED_WITH.items())


_SHAPES = {cls._type: _Shape(cls, constraint) for cls, constraint in _COVERED.items()} if _verified_versions() else {}
