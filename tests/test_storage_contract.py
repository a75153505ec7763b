"""The storage contract: what every backend of `taxii_server.storage.base.Store`
must do, written against the interface only so that the same suite runs
unchanged against each backend: SQLite, mongomock, and a real MongoDB replica
set when TAXII_TEST_MONGODB_URI names one (see tests/backends.py).

To run it against another backend, add one entry to backends.BACKENDS: a
function of pytest's tmp_path giving a storage URL that `open_store` understands.
"""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
import uuid
from dataclasses import replace

import pytest
from backends import BACKENDS, discard, require_shared_store
from conftest import indicator

from taxii_server.storage import open_store
from taxii_server.storage.base import (AddOutcome, ApiKeyRecord, AuditEvent, ClientCertRecord, NewVersion,
                                       ObjectQuery, Page, Store, StoreConflict, VersionFilter)
from taxii_server.timestamps import format_timestamp, parse_timestamp
from taxii_server.validation import check_object


@pytest.fixture(params=sorted(BACKENDS))
def backend_url(request, tmp_path) -> str:
    url = BACKENDS[request.param](tmp_path)
    yield url
    discard(url)


@pytest.fixture
def backend(backend_url) -> Store:
    store = open_store(backend_url)
    yield store
    store.close()


@pytest.fixture
def collection() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def other_collection() -> str:
    return str(uuid.uuid4())


# -- building versions and reading pages -----------------------------------------------------------------------

def day(n: int) -> str:
    """A `modified` timestamp on day n of January 2026 (the test indicators are created on day 1)."""
    return f"2026-01-{n:02d}T00:00:00.000Z"


def checked(obj: dict) -> NewVersion:
    result = check_object(obj)
    assert isinstance(result, NewVersion), result
    return result


def version(n: int, on: int = 1, **extra) -> NewVersion:
    """Indicator `n` as modified on day `on`."""
    return checked(indicator(n, modified=day(on), **extra))


def address(n: int, value: str = "198.51.100.7") -> NewVersion:
    """An ipv4-addr: a STIX object with neither `created` nor `modified`."""
    return checked({"type": "ipv4-addr", "id": f"ipv4-addr--{uuid.UUID(int=n, version=4)}", "value": value})


def malware(n: int) -> NewVersion:
    return checked({"type": "malware", "spec_version": "2.1", "id": f"malware--{uuid.UUID(int=n, version=4)}",
                    "created": day(1), "modified": day(1), "name": f"family {n}", "is_family": True})


def query(store: Store, collection_id: str, limit: int = 1000, **filters) -> Page:
    return store.query(ObjectQuery(collection_id=collection_id, limit=limit, **filters))


def everything(store: Store, collection_id: str) -> list:
    page = query(store, collection_id, versions=VersionFilter.every())
    assert page.more is False
    return page.records


def keys_of(records) -> list[tuple[str, str]]:
    return [(record.object_id, record.version) for record in records]


def key(new: NewVersion) -> tuple[str, str]:
    return new.object_id, new.version


# -- add_versions ----------------------------------------------------------------------------------------------

def test_new_versions_are_stored_and_reported_one_outcome_each_in_input_order(backend, collection):
    new = [version(1), version(2), version(1, on=2)]
    assert backend.add_versions(collection, new) == [AddOutcome(v.object_id, v.version, stored=True) for v in new]
    assert keys_of(everything(backend, collection)) == [key(v) for v in new]
    assert backend.count_versions(collection) == 3


def test_adding_no_versions_reports_no_outcomes(backend, collection):
    assert backend.add_versions(collection, []) == []
    assert backend.count_versions(collection) == 0


def test_an_exact_duplicate_is_a_success_that_stores_nothing(backend, collection):
    """Architecture rule 3: resending a stored object is a success, not a conflict."""
    backend.add_versions(collection, [version(1)])
    before = everything(backend, collection)
    assert backend.add_versions(collection, [version(1)]) == [AddOutcome(version(1).object_id, day(1), stored=False)]
    assert everything(backend, collection) == before


def test_duplicates_are_recognised_by_content_hash_whatever_the_key_order_of_the_body(backend, collection):
    original = indicator(1)
    reordered = dict(reversed(list(original.items())))
    first = checked(original)
    resent = replace(first, body=json.dumps(reordered).encode())  # the same content, keys in another order
    assert first.body != resent.body and checked(reordered).content_hash == first.content_hash
    backend.add_versions(collection, [first])
    [outcome] = backend.add_versions(collection, [resent])
    assert (outcome.stored, outcome.conflict) == (False, None)
    assert [record.body for record in everything(backend, collection)] == [first.body]


def test_a_duplicate_within_one_call_is_stored_once(backend, collection):
    outcomes = backend.add_versions(collection, [version(1), version(1)])
    assert [(o.stored, o.conflict) for o in outcomes] == [(True, None), (False, None)]
    assert backend.count_versions(collection) == 1


def test_a_resent_older_version_is_still_a_duplicate(backend, collection):
    backend.add_versions(collection, [version(1, on=1), version(1, on=2)])
    [outcome] = backend.add_versions(collection, [version(1, on=1)])
    assert (outcome.version, outcome.stored, outcome.conflict) == (day(1), False, None)
    assert backend.count_versions(collection) == 2


def test_other_content_under_a_stored_id_and_version_is_a_conflict_and_the_stored_one_is_kept(backend, collection):
    """Architecture rule 3: (collection, id, version) is unique."""
    original, impostor = version(1), version(1, name="changed without a new modified")
    backend.add_versions(collection, [original])
    [outcome] = backend.add_versions(collection, [impostor])
    assert (outcome.object_id, outcome.version, outcome.stored) == (original.object_id, original.version, False)
    assert isinstance(outcome.conflict, str) and outcome.conflict
    assert [record.body for record in everything(backend, collection)] == [original.body]


def test_a_conflict_within_one_call_refuses_only_the_later_object(backend, collection):
    original, impostor, bystander = version(1), version(1, name="other"), version(2)
    outcomes = backend.add_versions(collection, [original, impostor, bystander])
    assert [(o.stored, o.conflict is not None) for o in outcomes] == [(True, False), (False, True), (True, False)]
    assert keys_of(everything(backend, collection)) == [key(original), key(bystander)]


# -- unversioned objects ---------------------------------------------------------------------------------------

def test_an_object_without_created_or_modified_is_versioned_by_its_date_added(backend, collection):
    new = address(1)
    assert new.version is None and new.version_key is None
    [outcome] = backend.add_versions(collection, [new])
    [record] = everything(backend, collection)
    assert record.version == outcome.version == format_timestamp(record.date_added)
    assert outcome.stored is True


def test_changed_content_of_an_unversioned_object_is_its_new_latest_version(backend, collection):
    first, second = address(1, "198.51.100.7"), address(1, "198.51.100.8")
    backend.add_versions(collection, [first])
    backend.add_versions(collection, [second])
    records = everything(backend, collection)
    assert [record.body for record in records] == [first.body, second.body]
    assert parse_timestamp(records[0].version) < parse_timestamp(records[1].version)
    [latest] = query(backend, collection).records
    assert latest.body == second.body


def test_resending_an_unversioned_object_is_a_duplicate_of_its_stored_version(backend, collection):
    [stored] = backend.add_versions(collection, [address(1)])
    [again] = backend.add_versions(collection, [address(1)])
    assert (again.stored, again.conflict, again.version) == (False, None, stored.version)
    assert backend.count_versions(collection) == 1


# -- date_added and ordering -----------------------------------------------------------------------------------

def test_date_added_strictly_increases_within_one_call_and_across_calls(backend, collection, other_collection):
    """Architecture rule 1: date_added is unique and increasing per collection,
    in the order the versions were stored."""
    added = [version(n) for n in range(10)]
    backend.add_versions(collection, added[:6])
    backend.add_versions(other_collection, [version(100)])
    backend.add_versions(collection, added[6:7])
    backend.add_versions(other_collection, [version(101)])
    backend.add_versions(collection, added[7:])
    records = everything(backend, collection)
    assert keys_of(records) == [key(v) for v in added]
    dates = [record.date_added for record in records]
    assert all(earlier < later for earlier, later in zip(dates, dates[1:]))


def test_query_order_is_date_added_not_version_order(backend, collection):
    backend.add_versions(collection, [version(1, on=5)])
    backend.add_versions(collection, [version(2, on=1)])
    backend.add_versions(collection, [version(1, on=3)])
    assert keys_of(everything(backend, collection)) == [(version(1).object_id, day(5)),
                                                        (version(2).object_id, day(1)),
                                                        (version(1).object_id, day(3))]


# -- collections -----------------------------------------------------------------------------------------------

def test_collections_are_isolated(backend, collection, other_collection):
    shared, own = version(1), version(2)
    assert backend.add_versions(collection, [shared, own])[0].stored is True
    assert backend.add_versions(other_collection, [shared])[0].stored is True  # not a duplicate there
    assert keys_of(everything(backend, other_collection)) == [key(shared)]
    assert backend.object_exists(collection, own.object_id)
    assert not backend.object_exists(other_collection, own.object_id)
    assert (backend.count_versions(collection), backend.count_versions(other_collection)) == (2, 1)

    assert backend.delete_versions(other_collection, shared.object_id, VersionFilter.every(), ()) == 1
    assert keys_of(everything(backend, collection)) == [key(shared), key(own)]
    assert backend.delete_versions(other_collection, own.object_id, VersionFilter.every(), ()) == 0
    assert backend.count_versions(collection) == 2


def test_an_unknown_collection_is_empty(backend, collection):
    backend.add_versions(collection, [version(1)])
    nowhere = str(uuid.uuid4())
    assert query(backend, nowhere, versions=VersionFilter.every()) == Page(records=[], more=False)
    assert backend.count_versions(nowhere) == 0
    assert not backend.object_exists(nowhere, version(1).object_id)


# -- paging ----------------------------------------------------------------------------------------------------

@pytest.fixture
def eleven(backend, collection) -> list:
    """Eleven objects, stored in three calls; returns their records in date_added order."""
    backend.add_versions(collection, [version(n) for n in range(4)])
    backend.add_versions(collection, [version(n) for n in range(4, 9)])
    backend.add_versions(collection, [version(n) for n in range(9, 11)])
    records = everything(backend, collection)
    assert len(records) == 11
    return records


@pytest.mark.parametrize("limit, returned, more", [(1, 1, True), (10, 10, True), (11, 11, False), (50, 11, False)])
def test_limit_bounds_the_page_and_more_says_whether_anything_is_left(backend, collection, eleven,
                                                                       limit, returned, more):
    page = query(backend, collection, limit=limit)
    assert page.records == eleven[:returned]
    assert page.more is more


def test_after_position_pages_through_everything_once(backend, collection, eleven):
    """Architecture rule 2: keyset paging on date_added; no overlap, no gap."""
    pages, position = [], None
    for _ in range(len(eleven) + 1):
        page = query(backend, collection, limit=3, after_position=position)
        pages.append(page)
        if not page.more:
            break
        position = page.records[-1].date_added
    assert [len(page.records) for page in pages] == [3, 3, 3, 2]
    assert [page.more for page in pages] == [True, True, True, False]
    assert [record for page in pages for record in page.records] == eleven


def test_added_after_is_strictly_after(backend, collection, eleven):
    assert query(backend, collection, added_after=eleven[3].date_added).records == eleven[4:]
    assert query(backend, collection, added_after=eleven[0].date_added - 1).records == eleven
    assert query(backend, collection, added_after=eleven[-1].date_added) == Page(records=[], more=False)


def test_with_added_after_and_after_position_the_later_bound_applies(backend, collection, eleven):
    late, early = eleven[7].date_added, eleven[2].date_added
    assert query(backend, collection, added_after=early, after_position=late).records == eleven[8:]
    assert query(backend, collection, added_after=late, after_position=early).records == eleven[8:]


def test_added_after_pages_continue_with_after_position(backend, collection, eleven):
    first = query(backend, collection, limit=4, added_after=eleven[1].date_added)
    rest = query(backend, collection, limit=100, added_after=eleven[1].date_added,
                 after_position=first.records[-1].date_added)
    assert (first.more, rest.more) == (True, False)
    assert first.records + rest.records == eleven[2:]


# -- filters ---------------------------------------------------------------------------------------------------

@pytest.fixture
def mixed(backend, collection) -> dict[str, NewVersion]:
    """Indicators 1 and 2, malware 3, and indicator 4 in spec_version 2.0 (stored as given)."""
    objects = {"indicator 1": version(1), "indicator 2": version(2), "malware 3": malware(3),
               "indicator 4 (2.0)": replace(version(4), spec_version="2.0")}
    backend.add_versions(collection, list(objects.values()))
    return objects


def test_ids_select_those_objects(backend, collection, mixed):
    wanted = (mixed["malware 3"].object_id, mixed["indicator 1"].object_id, "indicator--unknown")
    assert keys_of(query(backend, collection, ids=wanted).records) == [key(mixed["indicator 1"]), key(mixed["malware 3"])]


def test_object_id_selects_one_object(backend, collection, mixed):
    assert keys_of(query(backend, collection, object_id=mixed["indicator 2"].object_id).records) == \
        [key(mixed["indicator 2"])]
    assert query(backend, collection, object_id="indicator--unknown").records == []


def test_types_select_those_types(backend, collection, mixed):
    assert keys_of(query(backend, collection, types=("malware",)).records) == [key(mixed["malware 3"])]
    assert len(query(backend, collection, types=("indicator", "malware")).records) == 4
    assert query(backend, collection, types=("campaign",)).records == []


def test_spec_versions_select_those_spec_versions(backend, collection, mixed):
    assert keys_of(query(backend, collection, spec_versions=("2.0",)).records) == [key(mixed["indicator 4 (2.0)"])]
    assert len(query(backend, collection, spec_versions=("2.1",)).records) == 3
    assert len(query(backend, collection, spec_versions=("2.0", "2.1")).records) == 4
    assert query(backend, collection, spec_versions=("2.2",)).records == []


def test_filters_combine_as_and(backend, collection, mixed):
    records = query(backend, collection, ids=(mixed["indicator 1"].object_id, mixed["malware 3"].object_id),
                    types=("indicator",), spec_versions=("2.1",)).records
    assert keys_of(records) == [key(mixed["indicator 1"])]


def test_with_body_false_returns_no_bodies_and_the_same_records(backend, collection, mixed):
    with_bodies = query(backend, collection).records
    without_bodies = query(backend, collection, with_body=False).records
    assert [record.body for record in without_bodies] == [None] * 4
    assert [replace(record, body=None) for record in with_bodies] == without_bodies
    assert [bytes(record.body) for record in with_bodies] == [new.body for new in mixed.values()]
    assert [(r.type, r.spec_version) for r in without_bodies] == [(n.type, n.spec_version) for n in mixed.values()]


# -- version filters -------------------------------------------------------------------------------------------

@pytest.fixture
def versioned(backend, collection) -> dict:
    """Indicator 1 on days 1, 2 and 3, and indicator 2 once, on day 1."""
    backend.add_versions(collection, [version(1, on=1), version(2, on=1)])
    backend.add_versions(collection, [version(1, on=2)])
    backend.add_versions(collection, [version(1, on=3)])
    return {"A1": key(version(1, on=1)), "A2": key(version(1, on=2)), "A3": key(version(1, on=3)),
            "B1": key(version(2, on=1))}


def exact(*days: int) -> tuple[int, ...]:
    return tuple(parse_timestamp(day(n)) for n in days)


VERSION_FILTERS = {
    "last (the default)": (VersionFilter.latest(), ["B1", "A3"]),
    "first": (VersionFilter(first=True), ["A1", "B1"]),
    "all": (VersionFilter.every(), ["A1", "B1", "A2", "A3"]),
    "exact middle version": (VersionFilter(exact=exact(2)), ["A2"]),
    "exact version shared by two objects": (VersionFilter(exact=exact(1)), ["A1", "B1"]),
    "first and last": (VersionFilter(first=True, last=True), ["A1", "B1", "A3"]),
    "first and an exact version": (VersionFilter(first=True, exact=exact(2)), ["A1", "B1", "A2"]),
    "last and exact versions": (VersionFilter(last=True, exact=exact(1, 2)), ["A1", "B1", "A2", "A3"]),
    "an exact version nobody has": (VersionFilter(exact=exact(9)), []),
    "nothing chosen": (VersionFilter(), []),
}


@pytest.mark.parametrize("versions, expected", [pytest.param(*row, id=name) for name, row in VERSION_FILTERS.items()])
def test_version_filters_select_first_last_all_and_exact_versions(backend, collection, versioned, versions, expected):
    """§3.4.2 match[version], in date_added order."""
    assert keys_of(query(backend, collection, versions=versions).records) == [versioned[k] for k in expected]


def first_and_last_of(store: Store, collection_id: str, object_id: str) -> tuple[str, str]:
    """The versions marked first and last for one object."""
    [first] = query(store, collection_id, object_id=object_id, versions=VersionFilter(first=True)).records
    [last] = query(store, collection_id, object_id=object_id, versions=VersionFilter.latest()).records
    return first.version, last.version


def test_first_and_last_follow_version_order_when_versions_arrive_out_of_order(backend, collection):
    object_id = version(1).object_id
    backend.add_versions(collection, [version(1, on=4)])
    assert first_and_last_of(backend, collection, object_id) == (day(4), day(4))
    backend.add_versions(collection, [version(1, on=6)])
    assert first_and_last_of(backend, collection, object_id) == (day(4), day(6))
    backend.add_versions(collection, [version(1, on=2)])  # an older version, added later
    assert first_and_last_of(backend, collection, object_id) == (day(2), day(6))
    backend.add_versions(collection, [version(1, on=5), version(1, on=3)])  # in between
    assert first_and_last_of(backend, collection, object_id) == (day(2), day(6))
    assert [record.version for record in everything(backend, collection)] == [day(n) for n in (4, 6, 2, 5, 3)]


# -- delete_versions -------------------------------------------------------------------------------------------

def test_deleting_the_latest_version_makes_the_previous_one_last(backend, collection, versioned):
    object_id = versioned["A3"][0]
    assert backend.delete_versions(collection, object_id, VersionFilter(exact=exact(3)), ()) == 1
    assert first_and_last_of(backend, collection, object_id) == (day(1), day(2))


def test_deleting_the_first_version_makes_the_next_one_first(backend, collection, versioned):
    object_id = versioned["A1"][0]
    assert backend.delete_versions(collection, object_id, VersionFilter(first=True), ()) == 1
    assert first_and_last_of(backend, collection, object_id) == (day(2), day(3))


def test_deleting_with_last_removes_only_the_latest_version(backend, collection, versioned):
    object_id = versioned["A1"][0]
    assert backend.delete_versions(collection, object_id, VersionFilter.latest(), ()) == 1
    assert keys_of(everything(backend, collection)) == [versioned[k] for k in ("A1", "B1", "A2")]


def test_deleting_every_version_removes_the_object_and_only_it(backend, collection, versioned):
    object_id = versioned["A1"][0]
    assert backend.delete_versions(collection, object_id, VersionFilter.every(), ()) == 3
    assert not backend.object_exists(collection, object_id)
    assert keys_of(everything(backend, collection)) == [versioned["B1"]]
    assert backend.count_versions(collection) == 1


def test_a_deleted_version_can_be_added_again_and_becomes_last_again(backend, collection, versioned):
    object_id = versioned["A3"][0]
    backend.delete_versions(collection, object_id, VersionFilter(exact=exact(3)), ())
    assert backend.add_versions(collection, [version(1, on=3)])[0].stored is True
    assert first_and_last_of(backend, collection, object_id) == (day(1), day(3))


@pytest.mark.parametrize("object_id, versions, spec_versions", [
    pytest.param(indicator(9)["id"], VersionFilter.every(), (), id="unknown object"),
    pytest.param(indicator(1)["id"], VersionFilter(exact=exact(9)), (), id="version not stored"),
    pytest.param(indicator(1)["id"], VersionFilter.every(), ("2.0",), id="other spec_version"),
    pytest.param(indicator(1)["id"], VersionFilter(), (), id="nothing chosen"),
])
def test_deleting_what_does_not_match_deletes_nothing(backend, collection, versioned, object_id, versions,
                                                      spec_versions):
    before = everything(backend, collection)
    assert backend.delete_versions(collection, object_id, versions, spec_versions) == 0
    assert everything(backend, collection) == before


# -- object_exists and count_versions ----------------------------------------------------------------------------

def test_object_exists_while_any_version_is_stored(backend, collection):
    object_id = version(1).object_id
    assert not backend.object_exists(collection, object_id)
    backend.add_versions(collection, [version(1, on=1), version(1, on=2)])
    assert backend.object_exists(collection, object_id)
    backend.delete_versions(collection, object_id, VersionFilter(exact=exact(1)), ())
    assert backend.object_exists(collection, object_id)
    backend.delete_versions(collection, object_id, VersionFilter.every(), ())
    assert not backend.object_exists(collection, object_id)


def test_count_versions_counts_every_stored_version_and_nothing_refused(backend, collection):
    backend.add_versions(collection, [version(1, on=1), version(1, on=2), version(2), address(3)])
    backend.add_versions(collection, [version(1, on=1), version(2, name="conflicting")])
    assert backend.count_versions(collection) == 4


# -- status resources ------------------------------------------------------------------------------------------

def test_a_saved_status_loads_with_its_owner_and_exact_body(backend):
    body = '{"id":"s1","status":"complete","note":"ünïcödé"}'.encode()
    backend.save_status("status-1", "northtel", 1_700_000_000_000_000, body)
    backend.save_status("status-2", "southwave", 1_700_000_000_000_001, b"{}")
    assert backend.load_status("status-1") == ("northtel", body)
    assert backend.load_status("status-2") == ("southwave", b"{}")
    assert backend.load_status("status-3") is None


# -- API keys --------------------------------------------------------------------------------------------------

def key_record(key_id: str, operator_id: str = "northtel", created: int = 1_000, **fields) -> ApiKeyRecord:
    return ApiKeyRecord(key_id=key_id, operator_id=operator_id, secret_hash="ab" * 32, created=created, **fields)


def test_a_key_record_reads_back_as_added(backend):
    full = key_record("0123456789ab", expires=5_000, revoked=None, last_used=2_000, label="SOC SIEM")
    plain = key_record("ba9876543210", operator_id="regulator")
    backend.add_key(full)
    backend.add_key(plain)
    assert backend.get_key("0123456789ab") == full
    assert backend.get_key("ba9876543210") == plain
    assert backend.get_key("000000000000") is None


def test_keys_are_listed_all_or_per_operator(backend):
    records = [key_record("k-north-1", created=1), key_record("k-north-2", created=2),
               key_record("k-south-1", operator_id="southwave", created=3)]
    for record in records:
        backend.add_key(record)
    assert sorted(r.key_id for r in backend.list_keys()) == ["k-north-1", "k-north-2", "k-south-1"]
    assert sorted(r.key_id for r in backend.list_keys("northtel")) == ["k-north-1", "k-north-2"]
    assert backend.list_keys("southwave") == [records[2]]
    assert backend.list_keys("nobody") == []


def test_revoking_a_key_records_when_and_keeps_the_first_revocation(backend):
    backend.add_key(key_record("k1"))
    assert backend.revoke_key("k1", 10) is True
    assert backend.get_key("k1").revoked == 10
    assert backend.revoke_key("k1", 20) is True
    assert backend.get_key("k1").revoked == 10
    assert backend.revoke_key("unknown", 10) is False


def test_a_key_expiry_can_be_set_changed_and_cleared(backend):
    backend.add_key(key_record("k1"))
    assert backend.set_key_expiry("k1", 50) is True
    assert backend.get_key("k1").expires == 50
    assert backend.set_key_expiry("k1", None) is True
    assert backend.get_key("k1").expires is None
    assert backend.set_key_expiry("unknown", 50) is False
    assert backend.get_key("unknown") is None


def test_touching_a_key_records_its_last_use(backend):
    backend.add_key(key_record("k1"))
    backend.add_key(key_record("k2"))
    backend.touch_key("k1", 30)
    backend.touch_key("k1", 40)
    backend.touch_key("unknown", 40)  # no error, no record
    assert (backend.get_key("k1").last_used, backend.get_key("k2").last_used) == (40, None)
    assert backend.get_key("unknown") is None


def test_key_changes_leave_the_other_fields_alone(backend):
    original = key_record("k1", expires=99, label="rotation 2026")
    backend.add_key(original)
    backend.touch_key("k1", 5)
    backend.revoke_key("k1", 6)
    assert backend.get_key("k1") == replace(original, last_used=5, revoked=6)


# -- audit trail -----------------------------------------------------------------------------------------------

def audit_event(at: int, operator_id: str | None = "northtel", status: int = 200) -> AuditEvent:
    return AuditEvent(at=at, method="GET", path="/api/collections/", status=status, client="127.0.0.1",
                      operator_id=operator_id, key_id="0123456789ab", collection_id=None, objects=0)


def test_audit_events_come_back_in_time_order_whatever_order_they_were_recorded_in(backend):
    """Servers on several hosts record into one trail: only the events' own times order it."""
    recorded = [audit_event(at) for at in (30, 10, 20)]
    for event in recorded:
        backend.record_audit(event)
    assert [event.at for event in backend.query_audit()] == [10, 20, 30]


def test_audit_events_at_the_same_time_come_back_in_the_order_they_were_recorded(backend):
    recorded = [replace(audit_event(10), path=f"/api/collections/{n}/") for n in range(5)]
    for event in recorded:
        backend.record_audit(event)
    assert backend.query_audit() == recorded


def test_audit_events_filter_by_operator_time_and_failed_authentication(backend):
    backend.record_audit(northtel := audit_event(10))
    backend.record_audit(regulator := audit_event(20, operator_id="regulator"))
    backend.record_audit(failure := audit_event(30, operator_id=None, status=401))
    assert backend.query_audit(operator_id="northtel") == [northtel]
    assert backend.query_audit(since=20) == [regulator, failure]
    assert backend.query_audit(failures_only=True) == [failure]
    assert backend.query_audit(limit=1) == [failure]  # the newest


# -- client certificates (mutual TLS) ---------------------------------------------------------------------------

def cert_record(fingerprint_digit: str, operator_id: str = "northtel", created: int = 1_000,
                **fields) -> ClientCertRecord:
    return ClientCertRecord(fingerprint=fingerprint_digit * 64, operator_id=operator_id,
                            subject=f"CN={operator_id} SOC", created=created, **fields)


def test_a_client_certificate_record_reads_back_as_added(backend):
    full = cert_record("a", expires=9_000, label="qradar prod")
    plain = cert_record("b", operator_id="regulator")
    assert backend.add_client_cert(full) is True
    assert backend.add_client_cert(plain) is True
    assert backend.find_client_cert("a" * 64) == full
    assert backend.find_client_cert("b" * 64) == plain
    assert backend.find_client_cert("c" * 64) is None


def test_registering_a_fingerprint_again_changes_nothing_and_says_so(backend):
    original = cert_record("a")
    backend.add_client_cert(original)
    assert backend.add_client_cert(cert_record("a", operator_id="southwave", label="other")) is False
    assert backend.find_client_cert("a" * 64) == original


def test_client_certificates_are_listed_all_or_per_operator(backend):
    records = [cert_record("1", created=1), cert_record("2", created=2), cert_record("3", "southwave", created=3)]
    for record in records:
        backend.add_client_cert(record)
    assert sorted(r.fingerprint for r in backend.list_client_certs()) == ["1" * 64, "2" * 64, "3" * 64]
    assert sorted(r.fingerprint for r in backend.list_client_certs("northtel")) == ["1" * 64, "2" * 64]
    assert backend.list_client_certs("southwave") == [records[2]]
    assert backend.list_client_certs("nobody") == []


def test_revoking_a_client_certificate_records_when_keeps_the_first_revocation_and_nothing_else(backend):
    original = cert_record("a", expires=9_000, label="siem")
    backend.add_client_cert(original)
    backend.add_client_cert(cert_record("b"))
    assert backend.revoke_client_cert("a" * 64, 10) is True
    assert backend.revoke_client_cert("a" * 64, 20) is True
    assert backend.find_client_cert("a" * 64) == replace(original, revoked=10)
    assert backend.find_client_cert("b" * 64).revoked is None
    assert backend.revoke_client_cert("c" * 64, 10) is False
    assert backend.find_client_cert("c" * 64) is None


# -- concurrent writers and a poller ---------------------------------------------------------------------------

WRITERS, CALLS_PER_WRITER = 4, 24


def write_concurrently(url: str, collection_id: str, writer: int, start) -> None:
    """One writer process: its own store on the same database; every third call
    also stores a new version of the object of the call before."""
    start.wait(60)
    store = open_store(url)
    try:
        for call in range(CALLS_PER_WRITER):
            batch = [version(1000 * writer + call)]
            if call % 3 == 2:
                batch.append(version(1000 * writer + call - 1, on=2))
            assert all(outcome.stored for outcome in store.add_versions(collection_id, batch))
    finally:
        store.close()


class WriterThread(threading.Thread):
    """A writer in a thread of this process, with an exit code like a process's."""

    def __init__(self, target, args):
        super().__init__(daemon=True)
        self._work, self._args, self.exitcode = target, args, None

    def run(self):
        try:
            self._work(*self._args)
            self.exitcode = 0
        except BaseException:
            self.exitcode = 1
            raise

    def kill(self):
        pass  # a thread cannot be killed; a stuck one shows as a None exit code


def concurrent_writers(writers_in: str, work, url: str, collection_id: str, count: int):
    """`count` writers in other processes or in threads, each running `work(url, collection_id,
    its number, start)`; they begin when `start` is set. Processes need a store they can share."""
    if writers_in == "processes":
        require_shared_store(url)
        context = multiprocessing.get_context("spawn")
        start = context.Event()
        return start, [context.Process(target=work, args=(url, collection_id, n, start)) for n in range(count)]
    start = threading.Event()
    return start, [WriterThread(target=work, args=(url, collection_id, n, start)) for n in range(count)]


@pytest.mark.parametrize("writers_in", ["processes", "threads"])
def test_a_poller_using_added_after_sees_every_version_exactly_once_while_others_write(
        backend, backend_url, collection, writers_in):
    """Architecture rule 1: a poller asking for added_after = the last date_added
    it has seen never misses a version, even while several writers commit, in
    other processes (as gunicorn workers and other hosts do) or in other threads."""
    start, writers = concurrent_writers(writers_in, write_concurrently, backend_url, collection, WRITERS)
    for process in writers:
        process.start()
    seen, last_seen = [], None
    try:
        start.set()
        for _ in range(50_000):
            writers_done = not any(process.is_alive() for process in writers)  # before the query: nothing after it
            page = query(backend, collection, limit=5, versions=VersionFilter.every(), added_after=last_seen,
                         with_body=False)
            seen += page.records
            if page.records:
                last_seen = page.records[-1].date_added
            elif writers_done:
                break
            else:
                time.sleep(0.002)
        else:
            pytest.fail("the poller never caught up with the writers")
    finally:
        for process in writers:
            process.join(60)
            if process.is_alive():
                process.kill()
    assert [process.exitcode for process in writers] == [0] * WRITERS

    expected = WRITERS * (CALLS_PER_WRITER + CALLS_PER_WRITER // 3)
    stored = everything(backend, collection)
    assert len(stored) == backend.count_versions(collection) == expected
    assert keys_of(seen) == keys_of(stored)
    assert len(set(keys_of(seen))) == expected
    assert all(earlier.date_added < later.date_added for earlier, later in zip(seen, seen[1:]))


# -- statuses written with their objects ---------------------------------------------------------------------

def test_a_status_made_from_the_outcomes_is_saved_in_the_same_write_as_the_objects(backend, collection):
    from taxii_server.storage.base import StatusRecord

    seen = []

    def status_for(outcomes):
        seen.extend(outcomes)
        return StatusRecord("5e1f0b52-6a8e-4d39-9c1a-3f1f4e2b7a10", "northtel", 1, repr(outcomes).encode())

    outcomes = backend.add_versions(collection, [version(1), version(2)], status_for=status_for)
    assert seen == outcomes and [o.stored for o in outcomes] == [True, True]
    assert backend.load_status("5e1f0b52-6a8e-4d39-9c1a-3f1f4e2b7a10") == ("northtel", repr(outcomes).encode())


def test_a_status_is_saved_even_when_no_object_was_valid(backend, collection):
    from taxii_server.storage.base import StatusRecord

    record = StatusRecord("8d0c3a6e-1f2b-4c5d-9e8f-7a6b5c4d3e2f", "northtel", 1, b"{}")
    assert backend.add_versions(collection, [], status_for=lambda outcomes: record) == []
    assert backend.load_status(record.id) == ("northtel", b"{}")
    assert backend.count_versions(collection) == 0


def test_when_making_the_status_fails_no_object_is_stored(backend, collection):
    def broken(outcomes):
        raise RuntimeError("status could not be made")

    with pytest.raises(RuntimeError):
        backend.add_versions(collection, [version(1)], status_for=broken)
    assert backend.count_versions(collection) == 0


# -- copying a whole store (the methods `taxii-server migrate` uses) ----------------------------------------

def test_export_gives_every_version_with_what_the_store_keeps_in_date_added_order_by_pages(backend, collection):
    backend.add_versions(collection, [version(1), version(2), address(3), version(1, on=2)])
    first_page = backend.export_versions(collection, None, 3)
    rest = backend.export_versions(collection, first_page[-1].date_added, 3)
    exported = first_page + rest
    assert [(r.object_id, r.version, r.date_added) for r in exported] == \
        [(s.object_id, s.version, s.date_added) for s in everything(backend, collection)]
    assert [r.body for r in exported] == [s.body for s in everything(backend, collection)]
    assert exported[0].content_hash == version(1).content_hash
    assert backend.export_versions(collection, exported[-1].date_added, 3) == []


def test_imported_versions_keep_their_date_added_and_get_first_and_last_right(backend, collection, other_collection):
    backend.add_versions(collection, [version(1, on=2), version(2), version(1, on=1)])
    exported = backend.export_versions(collection, None, 100)
    assert backend.import_versions(other_collection, exported) == 3
    assert everything(backend, other_collection) == everything(backend, collection)
    for versions in (VersionFilter.latest(), VersionFilter(first=True)):
        assert query(backend, other_collection, versions=versions) == query(backend, collection, versions=versions)


def test_importing_again_stores_nothing_new(backend, collection, other_collection):
    backend.add_versions(collection, [version(1), version(2)])
    exported = backend.export_versions(collection, None, 100)
    backend.import_versions(other_collection, exported)
    assert backend.import_versions(other_collection, exported) == 0
    assert backend.count_versions(other_collection) == 2


def test_after_an_import_new_versions_are_added_after_every_imported_one(backend, collection, other_collection):
    backend.add_versions(collection, [version(1), version(2)])
    exported = backend.export_versions(collection, None, 100)
    late = replace(exported[-1], object_id=version(9).object_id, date_added=exported[-1].date_added + 10 ** 12)
    backend.import_versions(other_collection, [*exported, late])
    backend.add_versions(other_collection, [version(3)])
    assert everything(backend, other_collection)[-1].date_added > late.date_added


def test_importing_other_content_under_a_held_version_is_a_conflict_that_stores_nothing(backend, collection,
                                                                                          other_collection):
    backend.add_versions(collection, [version(2), version(1)])
    backend.add_versions(other_collection, [version(1, name="another name")])
    before = everything(backend, other_collection)
    with pytest.raises(StoreConflict):
        backend.import_versions(other_collection, backend.export_versions(collection, None, 100))
    assert everything(backend, other_collection) == before


def test_importing_a_version_at_a_date_added_already_taken_is_a_conflict(backend, collection, other_collection):
    backend.add_versions(collection, [version(1)])
    backend.add_versions(other_collection, [version(2)])
    taken = everything(backend, other_collection)[0].date_added
    moved = replace(backend.export_versions(collection, None, 1)[0], date_added=taken)
    with pytest.raises(StoreConflict):
        backend.import_versions(other_collection, [moved])
    assert keys_of(everything(backend, other_collection)) == [key(version(2))]


def test_collection_ids_name_every_collection_written_to(backend, collection, other_collection):
    backend.add_versions(collection, [version(1)])
    backend.add_versions(other_collection, [version(1)])
    assert backend.collection_ids() == sorted([collection, other_collection])


def test_statuses_export_by_pages_and_import_once(backend):
    ids = sorted(str(uuid.UUID(int=n, version=4)) for n in range(1, 6))
    for n, status_id in enumerate(ids):
        backend.save_status(status_id, "northtel", n, f'{{"n": {n}}}'.encode())
    first_page = backend.export_statuses(None, 3)
    exported = first_page + backend.export_statuses(first_page[-1].id, 3)
    assert [s.id for s in exported] == ids
    assert backend.import_statuses(exported) == 0  # all held already
    assert backend.load_status(ids[2]) == ("northtel", b'{"n": 2}')


def test_put_key_adds_or_replaces_the_whole_record(backend):
    backend.put_key(key_record("k1"))
    backend.put_key(replaced := key_record("k1", operator_id="southwave", revoked=7, expires=9, label="siem"))
    assert backend.list_keys() == [replaced]


def test_put_client_cert_adds_or_replaces_the_whole_record(backend):
    backend.put_client_cert(cert_record("a"))
    backend.put_client_cert(replaced := cert_record("a", revoked=7, label="soc"))
    assert backend.list_client_certs() == [replaced]
