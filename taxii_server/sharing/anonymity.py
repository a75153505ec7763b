"""Hiding who posted an object in an anonymous collection.

What a licensee posts there reaches the other licensees with nothing that
names it:
- every reference (`created_by_ref` and any other `*_ref`/`*_refs`, at any
  depth) to one of its identities becomes the collection's anonymous identity;
- its identity object is refused (`names_submitter`);
- its configured names (name, id, aliases), e-mail addresses and phone numbers
  (in any spacing, national or international form) become "[redacted]" in
  every free-text property, and a custom property whose name contains one of
  its names is dropped.

The rewriting is deterministic, so the same post yields the same stored
object: exact duplicates stay duplicates, and the licensee keeps versioning
its own objects.
"""

from __future__ import annotations

import functools
import re

from ..config import Collection, Operator
from .identities import anonymous_identity, identity_of
from .scrubbing import REDACTED, is_reference, scrub_object

# A run of digits as people write phone numbers: +44 (0)20 7946-0958.
_PHONE_LIKE = re.compile(r"\+?\(?\d[\d ().-]{4,}\d")
_SHORTEST_PHONE = 7


def submitter_identities(operator: Operator, items: list[dict]) -> frozenset[str]:
    """The operator's configured identity, and any identity object in the same post that carries its name."""
    names = _names(operator)
    own = {identity_of(operator)}
    for item in items:
        if item.get("type") == "identity" and isinstance(item.get("name"), str) and names.search(item["name"]):
            own.add(item.get("id"))
    return frozenset(own)


def names_submitter(item: dict, identities: frozenset[str]) -> bool:
    return item.get("type") == "identity" and item.get("id") in identities


def anonymise(item: dict, operator: Operator, identities: frozenset[str], collection: Collection) -> dict:
    return hide(item, operator, identities, anonymous_identity(collection))


def hide(item: dict, operator: Operator, identities: frozenset[str], stand_in: str) -> dict:
    """References to `identities` become `stand_in`; the operator's names and contact data go."""
    replaced = _replace_references(item, identities, stand_in)
    return scrub_object(_drop_named_properties(replaced, _names(operator)), functools.partial(_scrub, operator))


def _replace_references(value, identities: frozenset[str], stand_in: str):
    if isinstance(value, dict):
        return {key: (_swap(item, identities, stand_in) if is_reference(key)
                      else _replace_references(item, identities, stand_in)) for key, item in value.items()}
    if isinstance(value, list):
        return [_replace_references(item, identities, stand_in) for item in value]
    return value


def _swap(value, identities: frozenset[str], stand_in: str):
    if isinstance(value, str):
        return stand_in if value in identities else value
    if isinstance(value, list):
        swapped = [stand_in if isinstance(v, str) and v in identities else v for v in value]
        return list(dict.fromkeys(swapped)) if all(isinstance(v, str) for v in swapped) else swapped
    return value


def _drop_named_properties(value, names: re.Pattern):
    if isinstance(value, dict):
        return {key: _drop_named_properties(item, names) for key, item in value.items()
                if not names.search(key.replace("_", " "))}
    if isinstance(value, list):
        return [_drop_named_properties(item, names) for item in value]
    return value


def _scrub(operator: Operator, text: str) -> str:
    text = _emails(operator).sub(REDACTED, text)
    text = _names(operator).sub(REDACTED, text)
    phones = _phone_digits(operator)
    if phones:
        text = _PHONE_LIKE.sub(lambda match: REDACTED if _same_phone(match.group(), phones) else match.group(), text)
    return text


@functools.lru_cache(maxsize=256)
def _names(operator: Operator) -> re.Pattern:
    names = sorted({operator.id, operator.name, *operator.aliases}, key=len, reverse=True)
    words = "|".join(r"[\s_-]*".join(map(re.escape, name.split())) for name in names)
    return re.compile(rf"(?<![A-Za-z0-9])(?:{words})(?![A-Za-z0-9])", re.IGNORECASE)


@functools.lru_cache(maxsize=256)
def _emails(operator: Operator) -> re.Pattern:
    if not operator.emails:
        return re.compile(r"(?!x)x")  # matches nothing
    return re.compile("|".join(re.escape(email) for email in operator.emails), re.IGNORECASE)


@functools.lru_cache(maxsize=256)
def _phone_digits(operator: Operator) -> tuple[str, ...]:
    return tuple(_significant(phone) for phone in operator.phones)


def _significant(text: str) -> str:
    """The digits, without the leading zeros of a trunk or international prefix (0, 00)."""
    return re.sub(r"\D", "", text).lstrip("0")


def _same_phone(text: str, phones: tuple[str, ...]) -> bool:
    """The same number as a configured one, written in international or national form:
    +44 20 7946 0958, 0044 20 7946 0958 and 020 7946 0958 are one number."""
    digits = _significant(text)
    if len(digits) < _SHORTEST_PHONE:
        return False
    return any(phone.endswith(digits) or digits.endswith(phone) for phone in phones)
