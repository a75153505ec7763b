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
from dataclasses import dataclass

from ..config import Collection, Operator
from .identities import anonymous_identity, identity_of
from .scrubbing import REDACTED, is_reference, scrub_object

# What people write between the digits of a phone number, "(0)" of +44 (0)20 included.
_PHONE_SEPARATOR = r"(?:[\s.-]|\(0\)|[()])*"
# The fewest trailing digits that still name a number (a local number without its area code).
_SHORTEST_PHONE = 7
_NOT_DIGITS = re.compile(r"\D")


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


@dataclass(frozen=True)
class Hidden:
    item: dict
    # Only references changed (to another identity): the object is as valid as it was.
    text_changed: bool


def anonymise(item: dict, operator: Operator, identities: frozenset[str], collection: Collection) -> Hidden:
    return hide(item, operator, identities, anonymous_identity(collection))


def hide(item: dict, operator: Operator, identities: frozenset[str], stand_in: str) -> Hidden:
    """References to `identities` become `stand_in`; the operator's names and contact data go."""
    replaced = _replace_references(item, identities, stand_in)
    scrubbed = scrub_object(_drop_named_properties(replaced, operator), functools.partial(_scrub, operator))
    return Hidden(scrubbed, scrubbed != replaced)


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


def _drop_named_properties(value, operator: Operator):
    if isinstance(value, dict):
        return {key: _drop_named_properties(item, operator) for key, item in value.items()
                if not _names_operator(key.replace("_", " "), operator)}
    if isinstance(value, list):
        return [_drop_named_properties(item, operator) for item in value]
    return value


def _names_operator(text: str, operator: Operator) -> bool:
    lowered = text.lower()
    return any(clue in lowered for clue in _text_clues(operator)) and _names(operator).search(text) is not None


def _scrub(operator: Operator, text: str) -> str:
    # Each pattern runs only where a plain substring test says it may match: running
    # them all over every string of every object would cost more than validation does.
    lowered = text.lower()
    if any(clue in lowered for clue in _text_clues(operator)):
        text = _names(operator).sub(REDACTED, _emails(operator).sub(REDACTED, text))
    # A number can only be there if its last digits are, once everything but digits is removed.
    digits = _NOT_DIGITS.sub("", text)
    if any(tail in digits for tail in _phone_tails(operator)):
        text = _phones(operator).sub(REDACTED, text)
    return text


@functools.lru_cache(maxsize=4096)  # a few per licensee, of which there may be hundreds
def _text_clues(operator: Operator) -> tuple[str, ...]:
    """Lowercase text found in any match of its names or e-mail addresses: each name's first word."""
    names = (operator.id, operator.name, *operator.aliases, *operator.emails)
    return tuple({re.split(r"[\s_-]+", name.strip())[0].lower() for name in names})


def _any_of(alternatives: list[str], flags: int = 0) -> re.Pattern:
    return re.compile("|".join(alternatives) if alternatives else r"(?!x)x", flags)  # (?!x)x matches nothing


@functools.lru_cache(maxsize=4096)  # a few per licensee, of which there may be hundreds
def _names(operator: Operator) -> re.Pattern:
    names = sorted({operator.id, operator.name, *operator.aliases}, key=len, reverse=True)
    # "NT-SOC" is also found written "NT SOC", "nt_soc" or "NTSOC".
    words = "|".join(r"[\s_-]*".join(map(re.escape, re.split(r"[\s_-]+", name.strip()))) for name in names)
    return re.compile(rf"(?<![A-Za-z0-9])(?:{words})(?![A-Za-z0-9])", re.IGNORECASE)


@functools.lru_cache(maxsize=4096)  # a few per licensee, of which there may be hundreds
def _emails(operator: Operator) -> re.Pattern:
    return _any_of([re.escape(email) for email in operator.emails], re.IGNORECASE)


@functools.lru_cache(maxsize=4096)  # a few per licensee, of which there may be hundreds
def _phone_tails(operator: Operator) -> tuple[str, ...]:
    return tuple(re.sub(r"\D", "", phone)[-_SHORTEST_PHONE:] for phone in operator.phones)


@functools.lru_cache(maxsize=4096)  # a few per licensee, of which there may be hundreds
def _phones(operator: Operator) -> re.Pattern:
    """Each configured number in any spacing, international (+44, 0044) or national (0 trunk
    prefix) form, or without its first digits: +44 20 7946 0958, 0044 20 7946 0958,
    020 7946 0958, (020) 7946-0958 and 7946 0958 are all found."""
    alternatives = []
    for phone in operator.phones:
        digits = re.sub(r"\D", "", phone).lstrip("0")
        head, tail = digits[:-_SHORTEST_PHONE], digits[-_SHORTEST_PHONE:]
        # The first digits are optional from the front: (?:(?:4 )?4 )?2... One pattern, not one per start.
        optional_head = ""
        for digit in head:
            optional_head = f"(?:{optional_head}{digit}{_PHONE_SEPARATOR})?"
        alternatives.append(rf"(?:(?:\+|00){_PHONE_SEPARATOR}|0{_PHONE_SEPARATOR})?{optional_head}"
                            + _PHONE_SEPARATOR.join(tail))
    return _any_of([rf"(?<!\d)(?:{a})(?!\d)" for a in alternatives])
