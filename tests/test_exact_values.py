"""What is stored is what was sent, within the STIX rules (security issue, points 9 and 10).

Integers wider than 64 bits used to become floats, so two submissions
differing in their low digits were "exact duplicates"; they are refused per
object now, and 64-bit integers are stored exactly. Custom objects used to
skip the STIX timestamp rules and the common properties; every type is held
to them now.
"""

from __future__ import annotations

import uuid

import pytest

from conftest import COMMUNITY, envelope, indicator

pytestmark = pytest.mark.every_backend

OBJECTS = f"/collections/{COMMUNITY}/objects/"


def custom(n: int = 1, **properties) -> dict:
    return {"type": "x-acme-widget", "spec_version": "2.1", "id": f"x-acme-widget--{uuid.UUID(int=n, version=4)}",
            "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z", **properties}


def failure_messages(session, *objects: dict) -> list[str]:
    status = session.post(OBJECTS, envelope(*objects)).json()
    return [failure["message"] for failure in status.get("failures", [])]


def test_integers_wider_than_64_bits_are_refused_per_object_not_rounded(northtel):
    wide, wider, fine = custom(1, x_count=10**20), custom(2, x_count=10**20 + 1), custom(3, x_count=7)
    status = northtel.post(OBJECTS, envelope(wide, wider, fine)).json()
    assert [success["id"] for success in status["successes"]] == [fine["id"]]
    assert [failure["id"] for failure in status["failures"]] == [wide["id"], wider["id"]]
    assert all("outside the 64-bit range" in failure["message"] for failure in status["failures"])
    nested = custom(4, x_data={"values": [1, 2, -(2**63) - 1]})
    assert "outside the 64-bit range" in failure_messages(northtel, nested)[0]


def test_integers_at_the_64_bit_bounds_are_stored_exactly(northtel):
    bounds = custom(1, x_largest=2**64 - 1, x_smallest=-(2**63), x_digits="1" * 40)
    assert failure_messages(northtel, bounds) == []
    stored = northtel.get(f"{OBJECTS}{bounds['id']}/").json()["objects"][0]
    assert (stored["x_largest"], stored["x_smallest"], stored["x_digits"]) == (2**64 - 1, -(2**63), "1" * 40)


@pytest.mark.parametrize("modified", [
    "2026-01-02T00:00:00.000+01:00", "2026-01-02t00:00:00.000Z", "2026-01-02T00:00:00.000z",
    "2026-01-02T00:00:00.1234567Z", "2026-01-02 00:00:00Z",
])
def test_custom_objects_are_held_to_the_stix_timestamp_format(northtel, modified):
    (message,) = failure_messages(northtel, custom(modified=modified))
    assert message.startswith("modified must be a STIX timestamp in UTC")


def test_registered_types_are_held_to_it_too(northtel):
    (message,) = failure_messages(northtel, indicator(1, modified="2026-01-02t00:00:00.000z"))
    assert message.startswith("modified must be a STIX timestamp in UTC")


@pytest.mark.parametrize("properties, reason", [
    ({"revoked": "yes"}, "revoked must be a boolean"),
    ({"labels": "x"}, "labels must be a list"),
    ({"lang": 5}, "lang must be a string"),
    ({"created_by_ref": "nope"}, "'created_by_ref'"),
    ({"object_marking_refs": [f"indicator--{uuid.UUID(int=1, version=4)}"]}, "'object_marking_refs'"),
    ({"external_references": [{"url": "https://example.org"}]}, "'external_references'"),
    ({"granular_markings": [{"selectors": ["name"]}]}, "'granular_markings'"),
    ({"defanged": 1}, "defanged must be a boolean"),
], ids=["revoked", "labels", "lang", "created_by_ref", "object_marking_refs", "external_references",
        "granular_markings", "defanged"])
def test_custom_objects_are_held_to_the_common_properties(northtel, properties, reason):
    (message,) = failure_messages(northtel, custom(**properties))
    assert reason in message


def test_a_custom_object_with_valid_common_properties_is_stored(northtel):
    tlp_green = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"
    assert failure_messages(northtel, custom(
        labels=["scanner"], revoked=False, lang="en", object_marking_refs=[tlp_green],
        created_by_ref=f"identity--{uuid.UUID(int=9, version=4)}",
        external_references=[{"source_name": "acme", "url": "https://example.org/widget"}],
        granular_markings=[{"marking_ref": tlp_green, "selectors": ["labels"]}])) == []
