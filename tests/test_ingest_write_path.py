"""The write path's shortcuts change nothing a client can see.

Anonymisation walks each object once with what it knows of the submitter
worked out once per post; the exact re-reading of wide integers runs only
when a number token (not a string) is that long; timestamp texts are read
once per distinct text. Each is held here to the behaviour it replaced.
"""

from __future__ import annotations

import orjson
import pytest

from sharing_support import config_with_contacts
from taxii_server.errors import TaxiiError
from taxii_server.sharing.anonymity import Anonymiser, hide
from taxii_server.sharing.identities import identity_of
from taxii_server.timestamps import TimestampError, parse_timestamp
from taxii_server.validation import objects_from_body

STAND_IN = "identity--00000000-0000-4000-8000-00000000aaaa"


@pytest.fixture
def config_path(tmp_path):
    return config_with_contacts(tmp_path, f"sqlite:///{tmp_path / 'store.sqlite3'}")


@pytest.fixture
def northtel(settings):
    return settings.operators["northtel"]


def note(n: int, creator: str, **extra) -> dict:
    return {"type": "note", "spec_version": "2.1", "id": f"note--00000000-0000-4000-8000-{n:012d}",
            "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
            "created_by_ref": creator, "content": "Seen scanning port 8080.", "object_refs": [creator], **extra}


def test_one_anonymiser_for_a_whole_post_hides_each_object_as_on_its_own(northtel):
    own = identity_of(northtel)
    post = [note(1, own), note(2, own, x_northtel_score=5, abstract="Questions to soc@northtel.example"),
            note(3, own), note(4, "identity--00000000-0000-4000-8000-00000000bbbb", x_northtel_score=1)]
    shared = Anonymiser(northtel, frozenset({own}), STAND_IN)
    for item in post:
        assert shared.hide(item) == hide(item, northtel, frozenset({own}), STAND_IN)
    first, second, third, fourth = (shared.hide(item) for item in post)
    assert first.item["created_by_ref"] == STAND_IN and first.item["object_refs"] == [STAND_IN]
    assert not first.text_changed and not third.text_changed  # only references changed: still valid
    assert second.text_changed and "x_northtel_score" not in second.item
    assert second.item["abstract"] == "Questions to [redacted]"
    assert fourth.text_changed and "x_northtel_score" not in fourth.item  # the property name, learnt once, still goes


def test_a_reference_nested_in_another_references_value_is_hidden_too(northtel):
    own = identity_of(northtel)
    item = note(5, own, x_sources_refs=[{"source_ref": own, "note": "from NorthTel"}])
    hidden = hide(item, northtel, frozenset({own}), STAND_IN).item
    assert own not in orjson.dumps(hidden).decode()


def test_structural_properties_and_references_are_never_scrubbed(northtel):
    own = identity_of(northtel)
    item = note(6, own, lang="northtel", x_partner_ref="identity--northtel-0000")
    hidden = hide(item, northtel, frozenset({own}), STAND_IN)
    assert hidden.item["lang"] == "northtel" and hidden.item["x_partner_ref"] == "identity--northtel-0000"
    assert not hidden.text_changed


@pytest.mark.parametrize("number_text", ["123456789012345678901", "-123456789012345678901"])
@pytest.mark.parametrize("template", ['{{"objects": [{{"type": "x-a", "id": "x-a--1", "n": {}}}]}}',
                                      '{{"objects": [{{"type": "x-a", "id": "x-a--1", "n": [1, {}]}}]}}',
                                      '{{"objects": [{{"type": "x-a", "id": "x-a--1", "n": [\n\t{}]}}]}}',
                                      '{{"objects": [{{"type": "x-a", "id": "x-a--1", "n":{}}}]}}'])
def test_an_integer_wider_than_64_bits_is_read_exactly_wherever_it_stands(template, number_text):
    [item] = objects_from_body(template.format(number_text).encode())
    value = item["n"] if isinstance(item["n"], int) else item["n"][-1]
    assert type(value) is int and value == int(number_text)


def test_long_digit_runs_inside_strings_stay_strings():
    body = orjson.dumps({"objects": [{"type": "indicator", "id": "indicator--1", "name": "0" * 64,
                                      "pattern": "[file:hashes.'SHA-256' = '" + "1" * 64 + "']"}]})
    [item] = objects_from_body(body)
    assert item["name"] == "0" * 64 and "1" * 64 in item["pattern"]


def test_a_timestamp_text_read_again_gives_the_same_instant_and_a_bad_one_fails_every_time():
    assert parse_timestamp("2026-01-31T12:00:00.5Z") == parse_timestamp("2026-01-31T12:00:00.5Z") \
        == parse_timestamp("2026-01-31T12:00:00.500000Z")
    for _ in range(2):
        with pytest.raises(TimestampError):
            parse_timestamp("2026-02-30T12:00:00Z")


def test_a_body_that_is_not_an_envelope_is_still_refused():
    with pytest.raises(TaxiiError):
        objects_from_body(b"123456789012345678901234")
