"""Removing text from every free-text property of a STIX object.

`scrub_object` walks an object (extensions, external references and lists
included) and hands each string to a scrubber; ids, types, references and the
keys named in `keep` are left alone. The scrubbers here are the regulator's
personal-data rules (config `scrubbing_rules`, schemas/scrubbing.schema.json)
and, in anonymity.py, one operator's names and contact data.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

from ..config import ScrubRule

REDACTED = "[redacted]"
# Never free text: what identifies, types or links objects, and when things happened.
STRUCTURAL = frozenset({"id", "type", "spec_version", "created", "modified", "valid_from", "valid_until",
                        "first_seen", "last_seen", "published", "first_observed", "last_observed", "start_time",
                        "stop_time", "lang", "pattern_type", "pattern_version"})

Scrubber = Callable[[str], str]
_REFERENCE_SUFFIXES = ("_ref", "_refs")


def is_reference(key: str) -> bool:
    return key.endswith(_REFERENCE_SUFFIXES)


def scrub_object(value, scrub: Scrubber, keep: frozenset[str] = frozenset()):
    """A copy of `value` with `scrub` applied to every free-text string in it."""
    if isinstance(value, dict):
        return {key: (item if key in STRUCTURAL or key in keep or is_reference(key)
                      else scrub_object(item, scrub, keep)) for key, item in value.items()}
    if isinstance(value, list):
        return [scrub_object(item, scrub, keep) for item in value]
    if isinstance(value, str):
        return scrub(value)
    return value


def personal_data_scrubber(rules: tuple[ScrubRule, ...]) -> Scrubber:
    compiled = _compiled(rules)

    def scrub(text: str) -> str:
        for pattern, replacement in compiled:
            text = pattern.sub(replacement, text)
        return text
    return scrub


@functools.lru_cache(maxsize=8)
def _compiled(rules: tuple[ScrubRule, ...]) -> tuple[tuple[re.Pattern, str], ...]:
    return tuple((re.compile(rule.pattern), rule.replacement) for rule in rules)
