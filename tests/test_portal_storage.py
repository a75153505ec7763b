"""The storage the portal adds to the contract, on every backend: newest-first
walks over the latest versions, and portal sessions."""

from __future__ import annotations

import uuid

import pytest
from backends import BACKENDS, discard
from conftest import indicator

from taxii_server.storage import open_store
from taxii_server.storage.base import NewVersion, PortalSession, Store
from taxii_server.validation import check_object


@pytest.fixture(params=sorted(BACKENDS))
def backend(request, tmp_path) -> Store:
    url = BACKENDS[request.param](tmp_path)
    store = open_store(url)
    yield store
    store.close()
    discard(url)


def checked(obj: dict) -> NewVersion:
    result = check_object(obj)
    assert isinstance(result, NewVersion), result
    return result


def test_recent_versions_walk_the_latest_versions_newest_first_between_bounds(backend):
    collection = str(uuid.uuid4())
    for n in range(5):
        backend.add_versions(collection, [checked(indicator(n))])
    backend.add_versions(collection, [checked(indicator(1, modified="2026-02-01T00:00:00.000Z"))])  # 1 moves up
    newest = backend.recent_versions(collection, limit=10)
    assert [r.object_id for r in newest] == [indicator(n)["id"] for n in (1, 4, 3, 2, 0)]
    assert newest[0].version == "2026-02-01T00:00:00.000Z" and newest[0].body is not None
    dates = [r.date_added for r in newest]
    assert [r.object_id for r in backend.recent_versions(collection, limit=2, before=dates[1])] == \
        [indicator(n)["id"] for n in (3, 2)]
    assert [r.date_added for r in backend.recent_versions(collection, limit=10, since=dates[2])] == dates[:2]
    assert backend.recent_versions(collection, limit=10, before=dates[3], since=dates[4]) == []
    assert backend.recent_versions(str(uuid.uuid4()), limit=10) == []
    without_bodies = backend.recent_versions(collection, limit=10, with_body=False)
    assert [r.body for r in without_bodies] == [None] * 5
    assert [(r.object_id, r.date_added) for r in without_bodies] == [(r.object_id, r.date_added) for r in newest]


def test_last_added_is_each_collections_latest_date_added(backend):
    first, second, empty = (str(uuid.uuid4()) for _ in range(3))
    backend.add_versions(first, [checked(indicator(1))])
    backend.add_versions(second, [checked(indicator(2)), checked(indicator(3))])
    latest = {cid: backend.recent_versions(cid, limit=1)[0].date_added for cid in (first, second)}
    assert backend.last_added([first, second, empty]) == latest
    assert backend.last_added([]) == {}


def test_a_portal_session_reads_back_is_touched_ended_once_and_gives_the_last_visit(backend):
    session = PortalSession(token_hash="a" * 64, operator_id="northtel", key_id="0123456789ab", created=100,
                            last_seen=100, previous_visit=50)
    backend.add_portal_session(session)
    assert backend.get_portal_session("a" * 64) == session
    assert backend.get_portal_session("b" * 64) is None
    backend.touch_portal_session("a" * 64, 300)
    backend.touch_portal_session("a" * 64, 200)  # an older touch never moves it back
    backend.end_portal_session("a" * 64, 400)
    backend.end_portal_session("a" * 64, 500)
    stored = backend.get_portal_session("a" * 64)
    assert (stored.last_seen, stored.ended) == (300, 400)
    backend.add_portal_session(PortalSession("c" * 64, "northtel", "0123456789ab", 150, 250))
    backend.add_portal_session(PortalSession("d" * 64, "northtel", "ba9876543210", 150, 900))
    assert backend.last_portal_visit("0123456789ab") == 300
    assert backend.last_portal_visit("ffffffffffff") is None
