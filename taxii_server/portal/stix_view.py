"""STIX objects rendered for people: TLP markings, titles, validity, references."""

from __future__ import annotations

from dataclasses import dataclass

from ..sharing.tlp import LEVEL_OF_MARKING, LEVELS, TLP2_MARKINGS
from ..timestamps import TimestampError, format_timestamp, now_micros, parse_timestamp

# The sharing rules' TLP table (sharing/tlp.py), by level name: the markings the portal writes and reads.
TLP_LEVELS = LEVELS
TLP2 = {LEVELS[level]: marking for level, marking in TLP2_MARKINGS.items()}
TLP_BY_MARKING = {marking: LEVELS[level] for marking, level in LEVEL_OF_MARKING.items()}
UNMARKED = "none"


def tlp_of(obj: dict) -> str:
    """The object's TLP level ('clear' ... 'red'), the strictest when several; 'none' when unmarked."""
    refs = obj.get("object_marking_refs")
    levels = [TLP_BY_MARKING[ref] for ref in refs if isinstance(ref, str) and ref in TLP_BY_MARKING] \
        if isinstance(refs, list) else []
    return max(levels, key=TLP_LEVELS.index) if levels else UNMARKED


def title_of(obj: dict) -> str:
    for field in ("name", "value", "pattern", "opinion", "abstract", "relationship_type"):
        value = obj.get(field)
        if isinstance(value, str) and value:
            return value if field not in ("opinion", "relationship_type") else f"{field}: {value}"
    return obj.get("id", "")


def searchable_text(obj: dict) -> str:
    """What the text filter looks in: name, description, the indicator's pattern, value, id."""
    parts = [obj.get(field) for field in ("name", "description", "pattern", "value", "id")]
    return "\n".join(part for part in parts if isinstance(part, str)).lower()


@dataclass(frozen=True)
class Validity:
    valid_from: str | None
    valid_until: str | None
    state: str  # "active", "expired", "not yet valid", "revoked", or "" when the object has no validity


def validity_of(obj: dict, now: int | None = None) -> Validity:
    valid_from, valid_until = obj.get("valid_from"), obj.get("valid_until")
    if obj.get("revoked") is True:
        return Validity(valid_from, valid_until, "revoked")
    if valid_from is None and valid_until is None:
        return Validity(None, None, "")
    now = now_micros() if now is None else now
    if _moment(valid_from, now) > now:
        return Validity(valid_from, valid_until, "not yet valid")
    if valid_until is not None and _moment(valid_until, now) <= now:
        return Validity(valid_from, valid_until, "expired")
    return Validity(valid_from, valid_until, "active")


def _moment(text, default: int) -> int:
    try:
        return parse_timestamp(text) if isinstance(text, str) else default
    except TimestampError:
        return default


def references(obj: dict) -> list[tuple[str, str]]:
    """(property, id) for every *_ref and *_refs property, markings included, in property order."""
    found = []
    for name, value in obj.items():
        if name.endswith("_ref") and isinstance(value, str):
            found.append((name, value))
        elif name.endswith("_refs") and isinstance(value, list):
            found.extend((name, item) for item in value if isinstance(item, str))
    return found


def version_order(version: str) -> int:
    """Versions are timestamps; sort them as moments, not as text."""
    try:
        return parse_timestamp(version)
    except TimestampError:
        return 0


def shown_time(micros: int | None) -> str:
    return "" if micros is None else format_timestamp(micros)[:19].replace("T", " ") + " UTC"
