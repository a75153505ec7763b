"""On a real MongoDB server, every page is one indexed query: the plan the
server reports for each shape of request walks the index the README names,
with no skip and, for pages over a whole collection, no in-memory sort.

mongomock has no query planner, so these run only when TAXII_TEST_MONGODB_URI
names a server (see tests/backends.py)."""

from __future__ import annotations

import pytest

from backends import BACKENDS, discard
from conftest import indicator
from taxii_server.storage import open_store
from taxii_server.storage.base import ObjectQuery, VersionFilter
from taxii_server.validation import check_object

pytestmark = pytest.mark.skipif("mongodb" not in BACKENDS, reason="needs a real MongoDB server with a query "
                                "planner: set TAXII_TEST_MONGODB_URI to run it")

COLLECTION = "0a6e6c4e-2b7e-4c8e-9f59-6d1c3f1d8a01"


@pytest.fixture(scope="module")
def store():
    url = BACKENDS["mongodb"](None)
    store = open_store(url)
    for day in (1, 2):
        store.add_versions(COLLECTION, [check_object(indicator(n, modified=f"2026-01-0{day}T00:00:00.000Z"))
                                        for n in range(300)])
    yield store
    store.close()
    discard(url)


def stages(plan: dict) -> list[dict]:
    """Every stage of the winning plan, outermost first."""
    found, stage = [], plan["queryPlanner"]["winningPlan"]
    stage = stage.get("queryPlan", stage)  # newer servers wrap the classic plan
    pending = [stage]
    while pending:
        stage = pending.pop()
        found.append(stage)
        pending += [stage["inputStage"]] if "inputStage" in stage else stage.get("inputStages", [])
    return found


BY_ID = indicator(7)["id"]
SHAPES = {
    "latest versions (the default)": (ObjectQuery(COLLECTION, 100), "last_by_date", False),
    "latest versions after a position": (ObjectQuery(COLLECTION, 100, after_position=1), "last_by_date", False),
    "types and added_after": (ObjectQuery(COLLECTION, 100, types=("indicator",), added_after=1), "last_by_date",
                              False),
    "every version": (ObjectQuery(COLLECTION, 100, versions=VersionFilter.every()), "by_date", False),
    "first versions": (ObjectQuery(COLLECTION, 100, versions=VersionFilter(first=True)), "first_by_date", False),
    "first and last versions": (ObjectQuery(COLLECTION, 100, versions=VersionFilter(first=True, last=True)),
                                "by_date", False),
    "one object": (ObjectQuery(COLLECTION, 100, object_id=BY_ID, versions=VersionFilter.every()), "by_id", True),
    "match[id]": (ObjectQuery(COLLECTION, 100, ids=(BY_ID, indicator(8)["id"])), "by_id", True),
}


@pytest.mark.parametrize("query, index, sorts_in_memory", SHAPES.values(), ids=list(SHAPES))
def test_each_page_is_one_scan_of_the_named_index(store, query, index, sorts_in_memory):
    plan = stages(store.page_cursor(query).explain())
    names = [stage["stage"] for stage in plan]
    assert [stage.get("indexName") for stage in plan if stage["stage"] == "IXSCAN"] == [index]
    assert "COLLSCAN" not in names and "SKIP" not in names
    # A whole-collection page walks the index in date_added order; a page of named
    # objects sorts their few versions.
    assert ("SORT" in names) == sorts_in_memory
