"""Pages are bounded by bytes as well as by count (security issue, point 12).

A page of objects ends before it would pass `paging.max_page_bytes`; an object
larger than that on its own is still served, alone on its page, and `more` and
`next` lead on as usual. Over HTTP, on every backend.
"""

from __future__ import annotations

import pytest

from conftest import COMMUNITY, envelope, indicator, write_config

pytestmark = pytest.mark.every_backend

OBJECTS = f"/collections/{COMMUNITY}/objects/"
MAX_PAGE_BYTES = 20_000


@pytest.fixture
def config_path(tmp_path, storage_url):
    return write_config(tmp_path, storage=storage_url, paging={"default_limit": 50, "max_limit": 200,
                                                               "max_page_bytes": MAX_PAGE_BYTES})


def large(n: int, size: int) -> dict:
    return indicator(n, description="x" * size)


def every_page(session, params: dict) -> list:
    """Each response of a poll that follows `next` while `more` is true."""
    answers = [session.get(OBJECTS, params=params)]
    while answers[-1].json()["more"]:
        answers.append(session.get(OBJECTS, params={**params, "next": answers[-1].json()["next"]}))
    return answers


def test_a_page_ends_before_its_objects_pass_max_page_bytes(northtel):
    sent = [large(n, 6_000) for n in range(10)]
    assert northtel.post(OBJECTS, envelope(*sent)).json()["success_count"] == 10
    pages = every_page(northtel, {"limit": "100"})
    assert len(pages) >= 4  # about three 6 KB objects fit in 20 KB
    assert all(len(page.content) <= MAX_PAGE_BYTES for page in pages)
    received = [item["id"] for page in pages for item in page.json()["objects"]]
    assert received == [item["id"] for item in sent]


def test_an_object_larger_than_a_page_is_served_alone_and_paging_goes_on(northtel):
    before, huge, after = large(1, 100), large(2, 3 * MAX_PAGE_BYTES), large(3, 100)
    for item in (before, huge, after):  # one at a time, so each has a date_added of its own
        assert northtel.post(OBJECTS, envelope(item)).json()["success_count"] == 1
    pages = every_page(northtel, {})
    assert [[item["id"] for item in page.json()["objects"]] for page in pages] == [
        [before["id"]], [huge["id"]], [after["id"]]]
    assert pages[1].json()["more"] is True and pages[1].json()["next"]


def test_manifests_are_not_cut_by_the_size_of_the_objects(northtel):
    assert northtel.post(OBJECTS, envelope(*[large(n, 6_000) for n in range(10)])).json()["success_count"] == 10
    manifest = northtel.get(f"/collections/{COMMUNITY}/manifest/").json()
    assert len(manifest["objects"]) == 10 and manifest["more"] is False
