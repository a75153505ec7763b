"""Plain values from STIX patterns: what a firewall or resolver can use.

A pattern is plain when it is one comparison, or an `OR` of comparisons, of the
form `<object path> = '<string>'` on one of the paths below, whether the ORs sit
inside one observation (`[a OR b]`) or between observations (`[a] OR [b]`).
Anything else (AND, NOT, other operators, qualifiers, parentheses, other paths)
is not a list entry: it is left out, with the reason, for the feed report.

Patterns reaching this module were validated when they were stored, so this
reader only has to recognise the plain shape, not check the whole grammar.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Object path -> feed kind. Hash names may be written quoted or, when they are
# plain identifiers, bare (`hashes.MD5`).
KIND_OF_PATH = {
    "ipv4-addr:value": "ipv4",
    "ipv6-addr:value": "ipv6",
    "domain-name:value": "domain",
    "url:value": "url",
    "file:hashes.'SHA-256'": "sha256",
    "file:hashes.'SHA-1'": "sha1",
    "file:hashes.'MD5'": "md5",
    "file:hashes.MD5": "md5",
}
KINDS = ("ipv4", "ipv6", "domain", "url", "sha256", "sha1", "md5")

_SPACE = r"[ \t\r\n]*"
_PATH = r"(?P<path>[a-z0-9-]+:[A-Za-z0-9_]+(?:\.(?:'[^']*'|[A-Za-z0-9_]+))*)"
_STRING = r"'(?P<value>[^'\\]*(?:\\['\\][^'\\]*)*)'"
_COMPARISON = re.compile(rf"{_SPACE}{_PATH}{_SPACE}(?:==|=){_SPACE}{_STRING}{_SPACE}")
_OPEN, _CLOSE, _OR = (re.compile(rf"{_SPACE}{token}{_SPACE}") for token in (r"\[", r"\]", r"OR\b"))


@dataclass(frozen=True)
class PlainValue:
    kind: str
    value: str


class NotPlain(ValueError):
    """The pattern is not a plain comparison or an OR of them; the message says what it has instead."""


def plain_values(pattern: str) -> list[PlainValue]:
    """The (kind, value) pairs a plain pattern compares, in pattern order; NotPlain otherwise."""
    values: list[PlainValue] = []
    position = 0
    expect_observation = True
    while expect_observation:
        position = _expect(_OPEN, pattern, position, "an observation in [ ]")
        while True:
            position = _comparison(pattern, position, values)
            after_or = _OR.match(pattern, position)
            if after_or is None:
                break
            position = after_or.end()
        position = _expect(_CLOSE, pattern, position, "OR or the end of the observation")
        after_or = _OR.match(pattern, position)
        expect_observation = after_or is not None
        if after_or is not None:
            position = after_or.end()
    if pattern[position:].strip():
        raise NotPlain(f"has more than ORs of plain comparisons (at {_excerpt(pattern, position)})")
    return values


def _comparison(pattern: str, position: int, values: list[PlainValue]) -> int:
    match = _COMPARISON.match(pattern, position)
    if match is None:
        raise NotPlain(f"is not a plain `path = 'value'` comparison (at {_excerpt(pattern, position)})")
    kind = KIND_OF_PATH.get(match["path"])
    if kind is None:
        raise NotPlain(f"compares {match['path']}, which no feed lists")
    values.append(PlainValue(kind, _unescape(match["value"])))
    return match.end()


def _expect(token: re.Pattern, pattern: str, position: int, wanted: str) -> int:
    match = token.match(pattern, position)
    if match is None:
        raise NotPlain(f"expected {wanted} (at {_excerpt(pattern, position)})")
    return match.end()


def _unescape(text: str) -> str:
    return re.sub(r"\\(['\\])", r"\1", text)


def _excerpt(pattern: str, position: int) -> str:
    rest = pattern[position:].strip()
    return repr(rest[:40] + ("..." if len(rest) > 40 else "")) if rest else "the end"
