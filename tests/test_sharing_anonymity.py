"""Anonymous community sharing, checked the way a curious licensee would.

NorthTel posts to community a report that names it every way it can: its
identity object, `created_by_ref` and other references to that identity, its
name, aliases, e-mail address and phone number (in international and national
form) in free text, a custom property named after it. SouthWave then reads
every byte it can (objects, manifest, versions, each object, its own statuses
and every error it can provoke) and none of it may name NorthTel. The content
itself must still arrive, and NorthTel must still be able to version it.
"""

from __future__ import annotations

import re

import pytest

from conftest import envelope, indicator
from sharing_support import config_with_contacts, identity, report, status_details
from taxii_server.keys import key_id_of
from taxii_server.sharing.identities import anonymous_identity, identity_of

pytestmark = pytest.mark.every_backend


@pytest.fixture
def config_path(tmp_path, storage_url):
    return config_with_contacts(tmp_path, storage_url)


@pytest.fixture
def northtel_identity(settings) -> str:
    return identity_of(settings.operators["northtel"])


def traces_of_northtel(settings, keys) -> list[str]:
    """Everything that would give NorthTel away, as text a search would find."""
    operator = settings.operators["northtel"]
    return [operator.id, operator.name, *operator.aliases, *operator.emails, identity_of(operator),
            key_id_of(keys["northtel"]), "7946 0958", "79460958", "NT SOC"]


def northtel_post(northtel_identity: str) -> list[dict]:
    sighting_of = indicator(1, created_by_ref=northtel_identity,
                            description="Seen by the NorthTel SOC (NT-SOC); questions to soc@northtel.example "
                                        "or +44 20 7946 0958 (020 7946 0958 from inside the country).",
                            x_northtel_ticket="INC-4411",
                            external_references=[{"source_name": "NorthTel Communications ticketing",
                                                  "external_id": "INC-4411"}])
    sighting = {"type": "sighting", "spec_version": "2.1", "id": "sighting--6a1b6c1e-3c1d-4f7a-8d2a-5e9f0b1c2d3e",
                "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
                "created_by_ref": northtel_identity, "sighting_of_ref": sighting_of["id"],
                "where_sighted_refs": [northtel_identity], "count": 3}
    return [identity(northtel_identity, "NorthTel"), sighting_of, sighting,
            report(1, [sighting_of["id"], sighting["id"], northtel_identity], created_by_ref=northtel_identity,
                   description="Phishing wave reported by NorthTel")]


def everything_southwave_reads(southwave, status_ids: list[str], object_ids: list[str]) -> list[bytes]:
    pages = [southwave.get("/collections/community/objects/?match[version]=all"),
             southwave.get("/collections/community/manifest/?match[version]=all"),
             southwave.get("/collections/community/"),
             southwave.get("/collections/"),
             southwave.get("/collections/community/objects/identity--00000000-0000-4000-8000-000000000000/")]
    for object_id in object_ids:
        pages += [southwave.get(f"/collections/community/objects/{object_id}/?match[version]=all"),
                  southwave.get(f"/collections/community/objects/{object_id}/versions/")]
    pages += [southwave.get(f"/status/{status_id}/") for status_id in status_ids]
    return [page.content for page in pages]


def test_a_second_licensee_finds_nothing_that_names_the_first(settings, keys, northtel, southwave, northtel_identity):
    posted = northtel_post(northtel_identity)
    response = northtel.post("/collections/community/objects/", envelope(*posted))
    successes, failures = status_details(response)
    assert [f["id"] for f in failures] == [northtel_identity]  # its identity object is refused
    assert len(successes) == 3

    # SouthWave tries to take over each object, and to post NorthTel's identity itself.
    attempts = [southwave.post("/collections/community/objects/",
                               envelope({**item, "modified": "2026-05-01T00:00:00.000Z"})) for item in posted[1:]]
    assert all(status_details(a)[1] for a in attempts)
    status_ids = [a.json()["id"] for a in attempts]
    read = everything_southwave_reads(southwave, status_ids, [item["id"] for item in posted])
    read += [a.content for a in attempts]

    stored = southwave.get("/collections/community/objects/").json()["objects"]
    anonymous = anonymous_identity(settings.collection("community"))
    assert {o["id"] for o in stored} == {item["id"] for item in posted[1:]} | {anonymous}
    blob = b"\n".join(read).decode()
    for trace in traces_of_northtel(settings, keys):
        assert not re.search(re.escape(trace), blob, re.IGNORECASE), f"SouthWave can read {trace!r}"


def test_references_to_the_submitter_become_the_collections_anonymous_identity(settings, northtel, southwave,
                                                                                northtel_identity):
    posted = northtel_post(northtel_identity)
    northtel.post("/collections/community/objects/", envelope(*posted))
    anonymous = anonymous_identity(settings.collection("community"))
    stored = {o["id"]: o for o in southwave.get("/collections/community/objects/").json()["objects"]}
    sighting_of, sighting, summary = (stored[item["id"]] for item in posted[1:])
    assert sighting_of["created_by_ref"] == sighting["created_by_ref"] == summary["created_by_ref"] == anonymous
    assert sighting["where_sighted_refs"] == [anonymous]
    assert summary["object_refs"] == [sighting_of["id"], sighting["id"], anonymous]
    # The intelligence itself arrives as posted.
    assert sighting_of["pattern"] == posted[1]["pattern"] and "x_northtel_ticket" not in sighting_of
    assert "[redacted]" in sighting_of["description"] and "Phishing wave" in summary["description"]


def test_the_licensee_keeps_versioning_its_own_objects(northtel, southwave, northtel_identity):
    posted = northtel_post(northtel_identity)
    northtel.post("/collections/community/objects/", envelope(*posted))
    again = status_details(northtel.post("/collections/community/objects/", envelope(posted[1])))
    assert again[0][0]["message"] == "already stored (exact duplicate)"
    v2 = {**posted[1], "modified": "2026-02-01T00:00:00.000Z", "name": "updated by NorthTel"}
    successes, failures = status_details(northtel.post("/collections/community/objects/", envelope(v2)))
    assert len(successes) == 1 and not failures
    (latest,) = southwave.get(f"/collections/community/objects/{v2['id']}/").json()["objects"]
    assert latest["name"] == "updated by [redacted]"


def test_the_regulator_sees_who_submitted(regulator, northtel, keys, northtel_identity):
    posted = northtel_post(northtel_identity)
    northtel.post("/collections/community/objects/", envelope(*posted))
    provenance = regulator.get(f"/sharing/provenance/{posted[1]['id']}/").json()
    (version,) = provenance["versions"]
    assert (version["collection"], version["submitter"], version["key_id"]) == \
        ("community", "northtel", key_id_of(keys["northtel"]))


def test_outside_an_anonymous_collection_nothing_is_rewritten(northtel, northtel_identity):
    posted = northtel_post(northtel_identity)
    response = northtel.post("/collections/northtel-reports/objects/", envelope(*posted))
    assert response.json()["success_count"] == 4
    stored = northtel.get(f"/collections/northtel-reports/objects/{posted[1]['id']}/").json()["objects"][0]
    assert stored["created_by_ref"] == northtel_identity and "soc@northtel.example" in stored["description"]


def test_an_object_naming_its_submitter_only_by_reference_is_stored_rewritten_and_recognised_again(
        settings, northtel, southwave, northtel_identity):
    plain = indicator(3, created_by_ref=northtel_identity, description="Seen scanning port 8080.")
    assert status_details(northtel.post("/collections/community/objects/", envelope(plain)))[0][0].get("message") is None
    (stored,) = southwave.get(f"/collections/community/objects/{plain['id']}/").json()["objects"]
    assert stored == {**plain, "created_by_ref": anonymous_identity(settings.collection("community"))}
    again = status_details(northtel.post("/collections/community/objects/", envelope(plain)))
    assert again[0][0]["message"] == "already stored (exact duplicate)"


def test_the_anonymous_identity_is_published_before_the_objects_that_refer_to_it_and_nobody_can_change_it(
        settings, regulator, northtel, southwave, northtel_identity):
    anonymous = anonymous_identity(settings.collection("community"))
    northtel.post("/collections/community/objects/", envelope(indicator(3, created_by_ref=northtel_identity)))
    objects = southwave.get("/collections/community/objects/").json()["objects"]
    assert [o["id"] for o in objects] == [anonymous, indicator(3)["id"]]  # in date_added order
    assert objects[0]["type"] == "identity" and objects[0]["name"] == "Anonymous contributor to Community sharing"
    forged = {**objects[0], "modified": "2026-02-01T00:00:00.000Z", "name": "NorthTel"}
    for session in (northtel, southwave, regulator):
        _, failures = status_details(session.post("/collections/community/objects/", envelope(forged)))
        assert "stands for every anonymous contributor" in failures[0]["message"]
