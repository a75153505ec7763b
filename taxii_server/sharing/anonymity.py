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

from ..config import Operator
from .identities import identity_of
from .scrubbing import REDACTED, STRUCTURAL, is_reference

# What people write between the digits of a phone number, "(0)" of +44 (0)20 included.
_PHONE_SEPARATOR = r"(?:[\s.-]|\(0\)|[()])*"
# The fewest trailing digits that still name a number (a local number without its area code).
_SHORTEST_PHONE = 7
_NOT_DIGITS = re.compile(r"\D+")


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


_NAMED, _REFERENCE, _STRUCTURAL, _TEXT = "named", "reference", "structural", "text"


@dataclass(frozen=True)
class Hidden:
    item: dict
    # Only references changed (to another identity): the object is as valid as it was.
    text_changed: bool


def hide(item: dict, operator: Operator, identities: frozenset[str], stand_in: str) -> Hidden:
    """References to `identities` become `stand_in`; the operator's names and contact data go."""
    return Anonymiser(operator, identities, stand_in).hide(item)


class Anonymiser:
    """`hide` for the objects of one post: what it needs of the operator is worked out once,
    and each object is walked once (references, named properties and free text together)."""

    def __init__(self, operator: Operator, identities: frozenset[str], stand_in: str):
        self.identities, self.stand_in = identities, stand_in
        self._clues, self._names, self._emails = _text_clues(operator), _names(operator), _emails(operator)
        self._phone_tails, self._phones = _phone_tails(operator), _phones(operator)
        self._shortest_tail = min(map(len, self._phone_tails), default=0)
        self._kinds: dict[str, str] = {}  # property name -> its kind (names repeat across objects)

    def hide(self, item: dict) -> Hidden:
        self._text_changed = False
        hidden = self._walk(item, True)
        return Hidden(hidden, self._text_changed)

    def _walk(self, value, scrub: bool):
        """References swapped and named properties dropped at any depth; free text scrubbed where `scrub`
        (never in structural properties, nor in references)."""
        if isinstance(value, str):
            if not scrub:
                return value
            scrubbed = self._scrub(value)
            if scrubbed != value:
                self._text_changed = True
            return scrubbed
        if isinstance(value, dict):
            hidden = {}
            for key, item in value.items():
                kind = self._kinds.get(key) or self._kind(key)
                if kind is _NAMED:
                    self._text_changed = True
                elif kind is _REFERENCE:
                    hidden[key] = self._walk(_swap(item, self.identities, self.stand_in), False)
                else:
                    hidden[key] = self._walk(item, scrub and kind is _TEXT)
            return hidden
        if isinstance(value, list):
            return [self._walk(item, scrub) for item in value]
        return value

    def _kind(self, key: str) -> str:
        """What a property is to the walk: named after the operator (dropped), a reference, structural or text."""
        text = key.replace("_", " ")
        lowered = text.lower()
        if any(clue in lowered for clue in self._clues) and self._names.search(text) is not None:
            kind = _NAMED
        else:
            kind = _REFERENCE if is_reference(key) else _STRUCTURAL if key in STRUCTURAL else _TEXT
        if len(self._kinds) < 4096:  # bounded: property names are the sender's to choose
            self._kinds[key] = kind
        return kind

    def _scrub(self, text: str) -> str:
        # Each pattern runs only where a plain substring test says it may match: running
        # them all over every string of every object would cost more than validation does.
        lowered = text.lower()
        if any(clue in lowered for clue in self._clues):
            text = self._names.sub(REDACTED, self._emails.sub(REDACTED, text))
        # A number can only be there if its last digits are, once everything but digits is removed.
        if self._phone_tails and len(text) >= self._shortest_tail:
            digits = _NOT_DIGITS.sub("", text)
            if any(tail in digits for tail in self._phone_tails):
                text = self._phones.sub(REDACTED, text)
        return text


def _swap(value, identities: frozenset[str], stand_in: str):
    if isinstance(value, str):
        return stand_in if value in identities else value
    if isinstance(value, list):
        swapped = [stand_in if isinstance(v, str) and v in identities else v for v in value]
        return list(dict.fromkeys(swapped)) if all(isinstance(v, str) for v in swapped) else swapped
    return value


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
