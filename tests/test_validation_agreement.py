"""The fast validation path and stix2 agree on every object (issue 4, Ingest).

The server validates incoming STIX 2.1 objects with stix2 (held to JSON
types and RFC 3339 `created`/`modified`), and proves the common ones valid
first on a fast path (taxii_server/fast_validation.py and pattern_checker.py)
that never builds a stix2 object. The fast path may only say "valid" where
stix2 says so too; anything else goes to stix2. These tests hold the two to
that over the corpus in tests/corpus/ (valid objects of every covered type,
valid patterns of many shapes, and invalid objects and patterns of many
kinds), then over bounded sets of generated and mutated objects and
patterns: for each, `check_object` gives the same result with and without
the fast path, and the fast path never proves valid what stix2 rejects.
"""

from __future__ import annotations

import copy
import json
import random
import sys
import uuid
from pathlib import Path

import pytest
from stix2patterns.validator import run_validator

from conftest import COMMUNITY, envelope
from taxii_server import fast_validation, pattern_checker
from taxii_server.storage.base import NewVersion
from taxii_server.validation import Rejected, _registered_class, check_object, stix2_problem

CORPUS = Path(__file__).parent / "corpus"


def corpus(name: str) -> list[dict]:
    return json.loads((CORPUS / name).read_text(encoding="utf-8"))["cases"]


def by_case(cases: list[dict]):
    return pytest.mark.parametrize("case", cases, ids=[case["case"] for case in cases])


VALID = corpus("objects_valid.json")
VALID_LEFT_TO_STIX2 = corpus("objects_valid_left_to_stix2.json")
INVALID = corpus("objects_invalid.json")
VALID_PATTERNS = corpus("patterns_valid.json")
INVALID_PATTERNS = corpus("patterns_invalid.json")
FALSY_REQUIRED = corpus("objects_falsy_required.json")


def stix2_accepts_pattern(pattern: str) -> bool:
    try:
        return not run_validator(pattern)
    except Exception:  # stix2 fails on some inputs (a negative index...): the indicator is rejected
        return False


def indicator_with(pattern: str) -> dict:
    return {
        "type": "indicator", "spec_version": "2.1", "id": "indicator--1f2a7a2c-8f5e-4a3f-9c55-6c1f8c2b7d10",
        "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
        "pattern": pattern, "pattern_type": "stix", "valid_from": "2026-01-01T00:00:00Z",
    }


def assert_same_result_both_ways(item: dict) -> NewVersion | Rejected:
    """check_object gives the same NewVersion, or the same rejection message,
    with the fast path and with stix2 alone; and the fast path only proves
    valid what stix2 accepts."""
    fast, reference = check_object(copy.deepcopy(item)), check_object(copy.deepcopy(item), fast=False)
    assert fast == reference
    if fast_validation.proves_valid(item):
        assert stix2_problem(item) is None, item
    return fast


# -- the corpus ----------------------------------------------------------------

@by_case(VALID)
def test_the_fast_path_proves_each_valid_corpus_object_valid_on_its_own(case):
    item = case["object"]
    assert stix2_problem(item) is None
    assert fast_validation.proves_valid(item)
    assert isinstance(assert_same_result_both_ways(item), NewVersion)


@by_case(VALID_LEFT_TO_STIX2)
def test_valid_shapes_the_fast_path_leaves_to_stix2_are_still_accepted(case):
    item = case["object"]
    assert not fast_validation.proves_valid(item)
    assert isinstance(assert_same_result_both_ways(item), NewVersion)


@by_case(INVALID)
def test_each_invalid_corpus_object_is_rejected_alike_with_and_without_the_fast_path(case):
    result = assert_same_result_both_ways(case["object"])
    assert isinstance(result, Rejected) and result.message


@by_case(FALSY_REQUIRED)
def test_empty_and_falsy_required_properties_get_the_same_result_with_and_without_the_fast_path(case):
    assert_same_result_both_ways(case["object"])


def test_every_required_property_of_every_covered_type_is_in_the_falsy_corpus():
    covered = {(case["object"]["type"], case["case"].split(" with ")[1].split(" = ")[0]) for case in FALSY_REQUIRED}
    for kind in fast_validation.covered_types():
        required = {name for name, prop in _registered_class(kind)._properties.items() if prop.required}
        assert {(kind, name) for name in required} <= covered, kind


def test_an_empty_relationship_type_is_refused_as_stix2_refuses_it(northtel):
    """It was proven valid by the fast path, stored, and then broke the stix2
    TAXII data source of every poller reading the collection."""
    relationship = next(case["object"] for case in VALID if case["object"]["type"] == "relationship")
    status = northtel.post(f"/collections/{COMMUNITY}/objects/",
                           envelope({**relationship, "relationship_type": ""})).json()
    assert status["failure_count"] == 1
    assert "relationship_type" in status["failures"][0]["message"]


def test_a_post_of_the_falsy_corpus_stores_exactly_what_stix2_accepts(northtel):
    objects = f"/collections/{COMMUNITY}/objects/"
    # An id of its own for each case (unless the case is about the id or the type): valid
    # variants of one object would otherwise clash as two contents of one version.
    cases = [{**case["object"], "id": f"{case['object']['type']}--{uuid.uuid4()}"}
             if case["object"]["id"] and case["object"]["type"] else case["object"] for case in FALSY_REQUIRED]
    for start in range(0, len(cases), 40):  # bodies stay under max_content_length
        batch = cases[start:start + 40]
        expected = [isinstance(check_object(copy.deepcopy(item), fast=False), NewVersion) for item in batch]
        status = northtel.post(objects, envelope(*batch)).json()
        assert status["total_count"] == len(batch)
        assert status["failure_count"] == expected.count(False)


@by_case(VALID_PATTERNS)
def test_the_pattern_checker_proves_each_valid_corpus_pattern(case):
    pattern = case["pattern"]
    assert stix2_accepts_pattern(pattern)
    assert pattern_checker.proves_valid(pattern)
    assert isinstance(assert_same_result_both_ways(indicator_with(pattern)), NewVersion)


@by_case(INVALID_PATTERNS)
def test_the_pattern_checker_never_proves_an_invalid_corpus_pattern(case):
    pattern = case["pattern"]
    assert not stix2_accepts_pattern(pattern)
    assert not pattern_checker.proves_valid(pattern)
    result = assert_same_result_both_ways(indicator_with(pattern))
    assert isinstance(result, Rejected) and result.message


def test_every_type_the_fast_path_covers_is_in_the_valid_corpus():
    covered = fast_validation.covered_types()
    assert covered, f"fast path off: installed stix2/stix2-patterns not in {fast_validation.VERIFIED_WITH}; re-verify"
    assert {"indicator", "malware", "relationship", "sighting", "report", "identity"} <= covered
    assert covered == {case["object"]["type"] for case in VALID}


def test_types_that_name_a_marking_or_an_extension_are_held_to_the_custom_object_rules():
    """stix2.parse passes `tlp` or `archive-ext` objects through unchecked, as
    unknown types; the server holds them to the rules of custom objects."""
    for kind in ("tlp", "statement", "archive-ext"):
        result = check_object({"type": kind, "id": "not-an-id", "spec_version": "2.1"})
        assert isinstance(result, Rejected) and "UUID" in result.message


def test_a_post_stores_the_valid_corpus_and_reports_each_invalid_object(northtel):
    """Over HTTP: every valid corpus object is a success, every invalid one a
    failure with a message (TAXII 2.1 §5.5)."""
    objects = f"/collections/{COMMUNITY}/objects/"
    valid = [case["object"] for case in VALID + VALID_LEFT_TO_STIX2]
    status = northtel.post(objects, envelope(*valid)).json()
    assert status["success_count"] == len(valid) and status["failure_count"] == 0
    invalid = [case["object"] for case in INVALID]
    for start in range(0, len(invalid), 40):  # bodies stay under max_content_length
        batch = invalid[start:start + 40]
        status = northtel.post(objects, envelope(*batch)).json()
        assert status["success_count"] == 0 and status["failure_count"] == len(batch)
        assert all(failure["message"] for failure in status["failures"])


# -- generated and mutated input (seeded, bounded) -----------------------------

JUNK_VALUES = [
    None, [], {}, "", "x", 0, -1, 7, 10**30, 1.5, True, False, [1], ["x"], [None], [{}], {"a": 1},
    "2026-01-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-01-01T00:00:00.1234567Z", "2026-01-01",
    "indicator--1f2a7a2c-8f5e-4a3f-9c55-6c1f8c2b7d10", "identity--1f2a7a2c-8f5e-4a3f-9c55-6c1f8c2b7d10",
    "malware--1f2a7a2c-8f5e-4a3f-1c55-6c1f8c2b7d10", "x-acme--1f2a7a2c-8f5e-4a3f-9c55-6c1f8c2b7d10",
    ["marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"], ["ipv4-addr--1f2a7a2c-8f5e-4a3f-9c55-6c1f8c2b7d10"],
    [{"kill_chain_name": "k", "phase_name": "p"}], [{"source_name": "s"}], "stix", "pcre", "agree",
]
JUNK_NAMES = ["x_acme", "X_acme", "_acme", "1acme", "", "self", "allow_custom", "extensions", "acme note"]
JUNK_CHARACTERS = list("-:.TZ0 9a'[]()=\\\"") + ["--", "\u00a0", "é", "\n"]


def mutate_text(rng: random.Random, text: str) -> str:
    position = rng.randrange(len(text) + 1)
    action = rng.randrange(4)
    if action == 0 and text:  # delete a character
        return text[:position - 1] + text[position:] if position else text[1:]
    if action == 1:  # insert one
        return text[:position] + rng.choice(JUNK_CHARACTERS) + text[position:]
    if action == 2 and text:  # replace one
        position = min(position, len(text) - 1)
        return text[:position] + rng.choice(JUNK_CHARACTERS) + text[position + 1:]
    return text[:position]  # truncate


def mutate_value(rng: random.Random, value):
    if isinstance(value, str) and rng.random() < 0.7:
        return mutate_text(rng, value)
    if isinstance(value, list) and value and rng.random() < 0.5:
        index = rng.randrange(len(value))
        return value[:index] + [mutate_value(rng, value[index])] + value[index + 1:]
    if isinstance(value, dict) and value and rng.random() < 0.5:
        name = rng.choice(sorted(value))
        return {**value, name: mutate_value(rng, value[name])}
    return copy.deepcopy(rng.choice(JUNK_VALUES))


def mutant(rng: random.Random, item: dict) -> dict:
    item = copy.deepcopy(item)
    for _ in range(rng.choice((1, 1, 2))):
        names = sorted(item)
        action = rng.randrange(6)
        if action == 0:
            del item[rng.choice(names)]
        elif action == 1:
            item[rng.choice(JUNK_NAMES)] = rng.choice(JUNK_VALUES)
        else:
            name = rng.choice([name for name in names if name not in ("type", "id")] or names)
            item[name] = mutate_value(rng, item[name])
    if not isinstance(item.get("type"), str):  # objects_from_body lets no other through
        item["type"] = "indicator"
    if not isinstance(item.get("id"), str):
        item["id"] = "indicator--1f2a7a2c-8f5e-4a3f-9c55-6c1f8c2b7d10"
    return item


def test_mutated_corpus_objects_get_the_same_result_with_and_without_the_fast_path():
    rng = random.Random(20260401)
    seeds = [case["object"] for case in VALID]
    accepted = rejected = 0
    for _ in range(1500):
        result = assert_same_result_both_ways(mutant(rng, rng.choice(seeds)))
        accepted += isinstance(result, NewVersion)
        rejected += isinstance(result, Rejected)
    # The mutations reach both verdicts often enough to mean something.
    assert accepted > 200 and rejected > 500


class PatternGenerator:
    """Random STIX 2.1 patterns following the grammar, within the sizes the
    fast checker reads: stix2-patterns accepts each one."""

    TYPES = ("ipv4-addr", "file", "x-acme-widget", "network-traffic", "windows-registry-key")
    HASHES = (("MD5", 32), ("'SHA-1'", 40), ("'SHA-256'", 64), ("SHA512", 128))

    def __init__(self, rng: random.Random):
        self.rng = rng

    def pattern(self) -> str:
        return self.observations(depth=0)

    def observations(self, depth: int) -> str:
        rng = self.rng
        parts = [self.observation(depth)]
        for _ in range(rng.choice((0, 0, 1, 2))):
            parts.append(rng.choice(("AND", "OR", "FOLLOWEDBY")))
            parts.append(self.observation(depth))
        return " ".join(parts)

    def observation(self, depth: int) -> str:
        rng = self.rng
        if depth < 3 and rng.random() < 0.2:
            text = f"({self.observations(depth + 1)})"
            qualifiers = [rng.choice(("WITHIN", "REPEATS")) for _ in range(rng.choice((0, 1, 2)))]
        else:
            text = f"[{self.comparisons(depth)}]"
            qualifiers = rng.sample(("WITHIN", "REPEATS", "START"), rng.choice((0, 0, 1, 2, 3)))
        for qualifier in qualifiers:
            text += {"WITHIN": f" WITHIN {rng.choice(('5', '0', '2.5', '+10', '.5'))} SECONDS",
                     "REPEATS": f" REPEATS {rng.randrange(1, 9)} TIMES",
                     "START": f" START {self.timestamp()} STOP {self.timestamp()}"}[qualifier]
        return text

    def comparisons(self, depth: int) -> str:
        rng = self.rng
        parts = [self.comparison(depth)]
        for _ in range(rng.choice((0, 0, 1, 3))):
            parts += [rng.choice(("AND", "OR")), self.comparison(depth)]
        return " ".join(parts)

    def comparison(self, depth: int) -> str:
        rng = self.rng
        kind = rng.randrange(10)
        if kind == 0 and depth < 3:
            return f"({self.comparisons(depth + 1)})"
        if kind == 1:
            return f"{rng.choice(('', 'NOT '))}EXISTS {self.path()}"
        if kind == 2:
            algorithm, length = rng.choice(self.HASHES)
            return f"file:hashes.{algorithm} = '{''.join(rng.choice('0123456789abcdefABCDEF') for _ in range(length))}'"
        negation = rng.choice(("", "", "NOT "))
        if kind == 3:
            literals = ", ".join(self.literal() for _ in range(rng.randrange(4)))
            return f"{self.path()} {negation}IN ({literals})"
        if kind == 4:
            return f"{self.path()} {negation}{rng.choice(('LIKE', 'MATCHES', 'ISSUBSET', 'ISSUPERSET'))} {self.string()}"
        if kind == 5:
            return f"{self.path()} {negation}{rng.choice(('<', '>', '<=', '>='))} {self.literal(orderable=True)}"
        return f"{self.path()} {negation}{rng.choice(('=', '==', '!=', '<>'))} {self.literal()}"

    def path(self) -> str:
        rng = self.rng
        text = f"{rng.choice(self.TYPES)}:{rng.choice(('value', 'name', 'x_acme_1', 'src_ref', self.string()))}"
        for _ in range(rng.choice((0, 0, 1, 2))):
            text += rng.choice((".name", ".'a b'", "[0]", "[*]", "[12]"))
        return text

    def literal(self, orderable: bool = False) -> str:
        rng = self.rng
        choices = [lambda: str(rng.randrange(-100, 100)), lambda: f"{rng.uniform(-5, 5):.3f}", self.string,
                   lambda: "h'" + "".join(rng.choice("0f9A") for _ in range(2 * rng.randrange(4))) + "'",
                   lambda: rng.choice(("b'AAAA'", "b'QUJD'", "b'AB=='", "b'ABC='", "b'QUJDRA=='")), self.timestamp]
        if not orderable:
            choices.append(lambda: rng.choice(("true", "false")))
        return rng.choice(choices)()

    def string(self) -> str:
        rng = self.rng
        pieces = ["a", "b c", "\\'", "\\\\", "%", "10.0.0.0/8", "é", "\n", "[x]", "AND"]
        return "'" + "".join(rng.choice(pieces) for _ in range(rng.randrange(4))) + "'"

    def timestamp(self) -> str:
        rng = self.rng
        fraction = rng.choice(("", ".5", ".123456", ".000000001"))
        return f"t'20{rng.randrange(10, 30)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 32):02d}T" \
               f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(61):02d}{fraction}Z'"


def test_the_pattern_checker_proves_generated_patterns_and_only_valid_mutations_of_them():
    rng = random.Random(20260402)
    generator = PatternGenerator(rng)
    proven_mutants = 0
    for _ in range(600):
        pattern = generator.pattern()
        assert stix2_accepts_pattern(pattern), pattern
        assert pattern_checker.proves_valid(pattern), pattern
        for _ in range(2):
            mutated = mutate_text(rng, pattern)
            if pattern_checker.proves_valid(mutated):
                proven_mutants += 1
                assert stix2_accepts_pattern(mutated), mutated
    assert proven_mutants > 100  # some mutations keep the pattern valid, and are proven so


def call_with_frames_on_the_stack(frames: int, function):
    return call_with_frames_on_the_stack(frames - 1, function) if frames else function()


def test_patterns_at_the_checkers_size_limits_are_accepted_by_stix2_even_deep_in_a_stack():
    """stix2-patterns recurses over its parse tree; the largest patterns the
    fast checker proves must not exhaust the stack there, even when the
    validation runs under a deep call stack (a WSGI server, a framework)."""
    nesting, tokens = pattern_checker._MAX_NESTING, pattern_checker._MAX_TOKENS
    chain = (tokens - 2 * nesting - 2) // 6  # "a:b = 1 OR" is six tokens
    largest = [
        "(" * nesting + "[a:b = 1]" + ")" * nesting,
        "[" + "(" * nesting + "a:b = 1" + ")" * nesting + "]",
        "(" * (nesting // 2) + "[" + "(" * (nesting // 2) + " OR ".join(["a:b = 1"] * chain) + ")" * (nesting // 2) + "]"
        + ")" * (nesting // 2),
        " FOLLOWEDBY ".join(["[a:b = 1]"] * ((tokens + 1) // 8)),  # eight tokens each, one FOLLOWEDBY fewer
        "[a:b" + ".c" * ((tokens - 7) // 2) + " = 1]",
        "([a:b = 1])" + " WITHIN 1 SECONDS" * ((tokens - 9) // 3),
    ]
    depth_left = sys.getrecursionlimit() - len(_stack())
    for pattern in largest:
        assert pattern_checker.proves_valid(pattern), pattern[:80]
        assert call_with_frames_on_the_stack(min(300, depth_left - 500), lambda p=pattern: stix2_accepts_pattern(p))
    assert not pattern_checker.proves_valid("(" * (nesting + 1) + "[a:b = 1]" + ")" * (nesting + 1))


def test_an_index_with_more_digits_than_python_reads_is_left_to_stix2_which_rejects_it():
    pattern = "[a:b[" + "1" * 5000 + "] = 1]"
    assert not pattern_checker.proves_valid(pattern)
    assert isinstance(assert_same_result_both_ways(indicator_with(pattern)), Rejected)


def _stack() -> list:
    frame, frames = sys._getframe(), []
    while frame:
        frames.append(frame)
        frame = frame.f_back
    return frames


def test_references_to_many_distinct_types_are_each_judged_like_stix2_does():
    """Reference verdicts are remembered per referenced type, a bounded number
    of them; beyond the bound they are worked out each time, alike."""
    relationship = {
        "type": "relationship", "spec_version": "2.1", "id": "relationship--1f2a7a2c-8f5e-4a3f-9c55-6c1f8c2b7d10",
        "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
        "relationship_type": "related-to", "source_ref": "indicator--1f2a7a2c-8f5e-4a3f-9c55-6c1f8c2b7d10",
    }
    for n in range(1100):
        kind = f"x-type-{n}" if n % 2 else "sighting"  # a custom type may be a target, a sighting may not
        result = assert_same_result_both_ways({**relationship, "target_ref": f"{kind}--{uuid.UUID(int=n, version=4)}"})
        assert isinstance(result, NewVersion if n % 2 else Rejected)
