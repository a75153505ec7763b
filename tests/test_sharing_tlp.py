"""TLP 2.0 per object, over HTTP: each collection holds markings up to its ceiling.

Shipped ceilings: advisories up to TLP:AMBER+STRICT, community up to TLP:AMBER,
each licensee's reports up to TLP:RED; an unmarked object counts as TLP:GREEN
in community and TLP:AMBER elsewhere. Anything above is refused per object in
the status, with the reason, whether the marking is on the object or granular,
TLP 2.0 or 1.0, in a first version or a later one.
"""

from __future__ import annotations

import shutil

import pytest
import yaml

from conftest import REPO, LiveServer, TaxiiSession, envelope, indicator, write_config
from sharing_support import TLP1, TLP2, status_details
from taxii_server.app import create_app
from taxii_server.config import load_settings
from taxii_server.keys import issue_key
from taxii_server.storage import open_store

pytestmark = pytest.mark.every_backend

LEVELS = ["clear", "green", "amber", "amber+strict", "red"]
CEILINGS = {"advisories": "amber+strict", "community": "amber", "northtel-reports": "red"}


def marked(n: int, level: str | None, **extra) -> dict:
    return indicator(n, **({"object_marking_refs": [TLP2[level]]} if level else {}), **extra)


@pytest.mark.parametrize("alias", sorted(CEILINGS))
@pytest.mark.parametrize("level", LEVELS)
def test_each_tlp_level_against_each_collection(regulator, alias, level):
    response = regulator.post(f"/collections/{alias}/objects/", envelope(marked(1, level)))
    assert response.status_code == 202
    successes, failures = status_details(response)
    if LEVELS.index(level) <= LEVELS.index(CEILINGS[alias]):
        assert len(successes) == 1 and not failures
        assert regulator.get(f"/collections/{alias}/objects/{marked(1, level)['id']}/").status_code == 200
    else:
        assert not successes
        (failure,) = failures
        assert f"TLP:{level.upper()}" in failure["message"]
        assert f"TLP:{CEILINGS[alias].upper()}" in failure["message"]
        assert regulator.get(f"/collections/{alias}/objects/{marked(1, level)['id']}/").status_code == 404


@pytest.mark.parametrize("alias", sorted(CEILINGS))
def test_unmarked_objects_are_accepted_everywhere_by_default(regulator, alias):
    response = regulator.post(f"/collections/{alias}/objects/", envelope(marked(1, None)))
    assert response.json()["success_count"] == 1


def test_a_licensee_is_held_to_the_same_ceiling_in_community(northtel):
    response = northtel.post("/collections/community/objects/",
                             envelope(marked(1, "amber"), marked(2, "amber+strict"), marked(3, "red")))
    successes, failures = status_details(response)
    assert [s["id"] for s in successes] == [marked(1, "amber")["id"]]
    assert {f["id"] for f in failures} == {marked(2, None)["id"], marked(3, None)["id"]}


def test_tlp_1_markings_count_as_their_tlp_2_levels(northtel):
    objects = [indicator(n, object_marking_refs=[TLP1[name]]) for n, name in enumerate(["white", "green", "amber", "red"])]
    successes, failures = status_details(northtel.post("/collections/community/objects/", envelope(*objects)))
    assert [s["id"] for s in successes] == [o["id"] for o in objects[:3]]
    (failure,) = failures
    assert failure["id"] == objects[3]["id"] and "TLP:RED" in failure["message"]


def test_a_granular_marking_above_the_ceiling_refuses_the_object(northtel):
    item = indicator(1, object_marking_refs=[TLP2["green"]],
                     granular_markings=[{"marking_ref": TLP2["red"], "selectors": ["description"]}],
                     description="the part only the reporter may read")
    successes, failures = status_details(northtel.post("/collections/community/objects/", envelope(item)))
    assert not successes
    assert "TLP:RED" in failures[0]["message"] and "granular" in failures[0]["message"]


def test_a_marking_arriving_in_a_later_version_is_refused_and_the_earlier_version_stays_latest(northtel, southwave):
    first = marked(1, "green", modified="2026-01-01T00:00:00.000Z")
    later = marked(1, "red", modified="2026-02-01T00:00:00.000Z")
    assert northtel.post("/collections/community/objects/", envelope(first)).json()["success_count"] == 1
    successes, failures = status_details(northtel.post("/collections/community/objects/", envelope(later)))
    assert not successes and "TLP:RED" in failures[0]["message"]
    latest = southwave.get(f"/collections/community/objects/{first['id']}/").json()["objects"]
    assert [o["modified"] for o in latest] == ["2026-01-01T00:00:00.000Z"]
    assert latest[0]["object_marking_refs"] == [TLP2["green"]]


def test_statement_markings_do_not_count_as_tlp(regulator):
    statement = "marking-definition--2b5a8c1e-3e4f-4c8a-9b7d-1f2e3d4c5b6a"
    response = regulator.post("/collections/community/objects/",
                              envelope(indicator(1, object_marking_refs=[statement, TLP2["amber"]])))
    assert response.json()["success_count"] == 1


@pytest.fixture
def refusing_unmarked(tmp_path, storage_url):
    """northtel's session on a deployment whose community refuses unmarked objects."""
    folder = tmp_path / "strict" / "collections"
    shutil.copytree(REPO / "collections", folder)
    community = yaml.safe_load((folder / "community.yaml").read_text())
    (folder / "community.yaml").write_text(yaml.safe_dump({**community, "unmarked_tlp": "refuse"}))
    settings = load_settings(write_config(folder.parent, storage=storage_url, collections_dir=str(folder)), environ={})
    store = open_store(settings.storage_url)
    live = LiveServer(create_app(settings, store))
    yield TaxiiSession(live.url, issue_key(store, settings.secret, "northtel").raw_key)
    live.stop()
    store.close()


def test_a_collection_may_refuse_unmarked_objects(refusing_unmarked):
    response = refusing_unmarked.post("/collections/community/objects/", envelope(marked(1, None), marked(2, "clear")))
    successes, failures = status_details(response)
    assert [s["id"] for s in successes] == [marked(2, None)["id"]]
    assert failures[0]["id"] == marked(1, None)["id"] and "no TLP marking" in failures[0]["message"]
