"""Migrating a store: `taxii-server migrate --from URL --to URL` and `taxii_server.migrate`.

A migration copies every version with its own `date_added`, every status,
every API key and client certificate; not the audit trail. It can be run again
and copies only what is new. The copying cases run for every pair of backends
in tests/backends.py, in both directions; the command itself runs in-process
through click's runner, because mongomock stores live inside one process.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import pytest
from click.testing import CliRunner

from backends import BACKENDS, discard
from conftest import indicator
from test_storage_contract import address, day, everything, keys_of, query, version
from taxii_server.cli import main
from taxii_server.keys import issue_key, key_id_of, verify_key
from taxii_server.migrate import MigrationReport, copy_store, versions_to_copy
from taxii_server.storage import open_store
from taxii_server.storage.base import (AuditEvent, ClientCertRecord, NewVersion, StatusRecord, Store, StoreConflict,
                                       VersionFilter, VersionRecord)
from taxii_server.timestamps import now_micros
from taxii_server.validation import check_object

SECRET = b"the server secret both stores are served with, 32 bytes or more"
HOUR = 3_600_000_000
PAIRS = [(source, destination) for source in sorted(BACKENDS) for destination in sorted(BACKENDS)]


# -- stores ------------------------------------------------------------------------------------------------------

@pytest.fixture
def fresh_url(tmp_path):
    """fresh_url(backend, name): the URL of a new, empty store; discarded when the test ends."""
    made: list[str] = []

    def make(backend: str, name: str) -> str:
        made.append(BACKENDS[backend](tmp_path / name))
        return made[-1]

    yield make
    for url in made:
        discard(url)


@pytest.fixture
def opened():
    """opened(url): the store at `url`, closed when the test ends."""
    stores: list[Store] = []

    def open_for_test(url: str) -> Store:
        stores.append(open_store(url))
        return stores[-1]

    yield open_for_test
    for store in stores:
        store.close()


@pytest.fixture(params=PAIRS, ids="->".join)
def backends(request) -> tuple[str, str]:
    """(source backend, destination backend)."""
    return request.param


@pytest.fixture
def source(backends, fresh_url, opened) -> Store:
    return opened(fresh_url(backends[0], "source"))


@pytest.fixture
def destination(backends, fresh_url, opened) -> Store:
    return opened(fresh_url(backends[1], "destination"))


# -- what a source holds ---------------------------------------------------------------------------------------

@dataclass
class Sample:
    """What `fill` wrote, as far as the assertions need to find it again."""

    advisories: str
    reports: str
    status_ids: list[str]
    raw_keys: dict[str, str]  # operator id -> the key its tools present


def status_of(status_id: str, owner: str):
    """A status maker for `add_versions`: the status is saved in the same write as the objects."""
    def make(outcomes) -> StatusRecord:
        body = {"id": status_id, "status": "complete", "success_count": sum(o.stored for o in outcomes)}
        return StatusRecord(status_id, owner, now_micros(), json.dumps(body).encode())
    return make


def fill(store: Store) -> Sample:
    """Two collections with several versions of one object (its first one deleted), an object without
    `modified`, three statuses, two keys (one used, one expiring), two client certificates (one revoked)
    and an audit event."""
    advisories, reports = str(uuid.uuid4()), str(uuid.uuid4())
    status_ids = [str(uuid.uuid4()) for _ in range(3)]
    store.add_versions(advisories, [version(1, on=1), version(2)], status_for=status_of(status_ids[0], "northtel"))
    store.add_versions(advisories, [version(1, on=2), version(1, on=3), address(1)],
                       status_for=status_of(status_ids[1], "northtel"))
    store.delete_versions(advisories, version(1).object_id, VersionFilter(exact=(version(1, on=1).version_key,)), ())
    store.add_versions(reports, [version(3, on=4), version(4)])
    store.save_status(status_ids[2], "southwave", now_micros(), b'{"status": "complete"}')

    northtel = issue_key(store, SECRET, "northtel", label="sentinel prod")
    store.touch_key(northtel.record.key_id, now_micros())
    southwave = issue_key(store, SECRET, "southwave", expires=now_micros() + 24 * HOUR)
    for n, operator_id in enumerate(("northtel", "southwave")):
        store.add_client_cert(ClientCertRecord(fingerprint=f"{n:x}" * 64, operator_id=operator_id,
                                               subject=f"CN={operator_id} soc", created=now_micros(),
                                               expires=now_micros() + 365 * 24 * HOUR, label="qradar prod"))
    store.revoke_client_cert("1" * 64, now_micros())
    store.record_audit(AuditEvent(at=now_micros(), method="POST", path=f"/api/collections/{advisories}/objects/",
                                  status=202, client="127.0.0.1", operator_id="northtel",
                                  key_id=northtel.record.key_id, collection_id=advisories, objects=3))
    return Sample(advisories, reports, status_ids, {"northtel": northtel.raw_key, "southwave": southwave.raw_key})


# Versions, statuses, keys and certificates `fill` writes: 4 versions remain in advisories, 2 in reports.
FILLED = MigrationReport(versions_copied=6, versions_present=0, statuses_copied=3, statuses_present=0,
                         keys=2, client_certs=2)


def contents(store: Store, sample: Sample) -> dict:
    """All a client or an operator can see of the sample in a store, audit trail aside."""
    collections = (sample.advisories, sample.reports)
    return {
        "collections": store.collection_ids(),
        "every version": {c: everything(store, c) for c in collections},
        "latest versions": {c: query(store, c, versions=VersionFilter.latest()).records for c in collections},
        "first versions": {c: query(store, c, versions=VersionFilter(first=True)).records for c in collections},
        "statuses": {status_id: store.load_status(status_id) for status_id in sample.status_ids},
        "keys": sorted(store.list_keys(), key=lambda record: record.key_id),
        "client certificates": sorted(store.list_client_certs(), key=lambda record: record.fingerprint),
    }


def held_elsewhere(new: NewVersion, date_added: int) -> VersionRecord:
    """`new` as a store that assigned it `date_added` holds it."""
    return VersionRecord(new.object_id, new.type, new.version, new.version_key, new.spec_version, date_added,
                         new.content_hash, new.body)


def other_content(n: int, on: int = 1) -> NewVersion:
    """Indicator `n` as modified on day `on`, with other content than `version(n, on)`: same id, same version."""
    changed = check_object(indicator(n, modified=day(on), name="the same id and version, other content"))
    assert isinstance(changed, NewVersion), changed
    return changed


# -- copying -----------------------------------------------------------------------------------------------------

def test_the_destination_holds_what_the_source_holds(source, destination):
    """Every version under its own date_added, the same first and latest versions, statuses, keys and
    certificates; a batch smaller than the data pages through it."""
    sample = fill(source)
    assert copy_store(source, destination, batch=2) == FILLED
    assert contents(destination, sample) == contents(source, sample)


def test_the_audit_trail_stays_in_the_source(source, destination):
    fill(source)
    copy_store(source, destination)
    assert len(source.query_audit()) == 1
    assert destination.query_audit() == []


@pytest.mark.parametrize("middle", sorted(BACKENDS))
def test_a_round_trip_through_another_backend_gives_back_the_original(fresh_url, opened, middle):
    """sqlite -> mongomock (or any backend) -> sqlite."""
    original = opened(fresh_url("sqlite", "original"))
    through = opened(fresh_url(middle, "middle"))
    back = opened(fresh_url("sqlite", "back"))
    sample = fill(original)

    assert copy_store(original, through) == FILLED
    assert copy_store(through, back) == FILLED
    assert contents(back, sample) == contents(original, sample)


def test_a_second_run_copies_nothing_and_changes_nothing(source, destination):
    """Keys and certificates are written again each run: that is how later changes reach the destination."""
    sample = fill(source)
    copy_store(source, destination)
    after_first_run = contents(destination, sample)

    again = copy_store(source, destination)
    assert again == MigrationReport(versions_copied=0, versions_present=6, statuses_copied=0, statuses_present=3,
                                    keys=2, client_certs=2)
    assert contents(destination, sample) == after_first_run


def test_a_second_run_copies_what_the_source_stored_since_the_first(source, destination):
    sample = fill(source)
    copy_store(source, destination)
    source.add_versions(sample.reports, [version(3, on=5), version(5)], status_for=status_of(str(uuid.uuid4()), "northtel"))

    again = copy_store(source, destination)
    assert (again.versions_copied, again.versions_present) == (2, 6)
    assert (again.statuses_copied, again.statuses_present) == (1, 3)
    assert everything(destination, sample.reports) == everything(source, sample.reports)


def test_keys_work_against_the_destination_and_a_revocation_since_the_first_run_reaches_it(source, destination):
    sample = fill(source)
    northtel, southwave = sample.raw_keys["northtel"], sample.raw_keys["southwave"]
    copy_store(source, destination)
    assert verify_key(destination, SECRET, northtel, now_micros()) is not None

    revoked_at, expires = now_micros(), now_micros() + HOUR
    source.revoke_key(key_id_of(northtel), revoked_at)
    source.set_key_expiry(key_id_of(southwave), expires)
    source.revoke_client_cert("0" * 64, revoked_at)
    copy_store(source, destination)

    assert verify_key(destination, SECRET, northtel, now_micros()) is None
    assert destination.get_key(key_id_of(northtel)).revoked == revoked_at
    assert destination.get_key(key_id_of(southwave)).expires == expires
    assert destination.find_client_cert("0" * 64).revoked == revoked_at


def test_new_writes_to_the_destination_come_after_every_copied_version(source, destination):
    """Pollers continue where they were: even when the source's clock ran an hour ahead of this host's,
    a version stored after the migration has a later date_added than every copied one."""
    collection = str(uuid.uuid4())
    ahead = now_micros() + HOUR
    source.import_versions(collection, [held_elsewhere(version(1), ahead), held_elsewhere(version(2), ahead + 1)])
    copy_store(source, destination)
    poller_position = everything(destination, collection)[-1].date_added

    destination.add_versions(collection, [version(3)])
    newer = query(destination, collection, added_after=poller_position).records
    assert keys_of(newer) == [(version(3).object_id, day(1))]
    assert newer[0].date_added > ahead + 1


def test_progress_hears_of_every_version_batch_by_batch(source, destination):
    fill(source)
    heard: list[int] = []
    copy_store(source, destination, progress=heard.append, batch=3)
    assert versions_to_copy(source) == 6
    # advisories holds 4 versions (a batch of 3, then 1) and reports 2, whichever collection comes first.
    assert sorted(heard) == [1, 2, 3]


def test_other_content_under_a_copied_version_stops_the_migration(source, destination):
    collection = str(uuid.uuid4())
    source.add_versions(collection, [version(1), version(2)])
    destination.add_versions(collection, [other_content(1)])
    held = everything(destination, collection)

    with pytest.raises(StoreConflict, match=version(1).object_id):
        copy_store(source, destination)
    assert everything(destination, collection) == held  # the batch holding the conflict stored nothing


def test_another_version_at_a_copied_date_added_stops_the_migration(source, destination):
    """Two versions cannot share a date_added in one collection: a poller would skip one of them."""
    collection = str(uuid.uuid4())
    taken = now_micros()
    source.import_versions(collection, [held_elsewhere(version(1), taken)])
    destination.import_versions(collection, [held_elsewhere(version(2), taken)])

    with pytest.raises(StoreConflict):
        copy_store(source, destination)
    assert keys_of(everything(destination, collection)) == [(version(2).object_id, day(1))]


# -- the command -----------------------------------------------------------------------------------------------

PASSWORD = "s3cret-password"


def migrate(*args: str, environ: dict | None = None):
    return CliRunner().invoke(main, ["migrate", *args], env=environ)


def migrate_by_environment(source_url: str, destination_url: str):
    """URLs with a password are given in the environment, out of the process list."""
    return migrate(environ={"TAXII_MIGRATE_FROM": source_url, "TAXII_MIGRATE_TO": destination_url})


def summary(versions: tuple[int, int], statuses: tuple[int, int], keys: int, client_certs: int) -> str:
    return (f"versions: {versions[0]} copied, {versions[1]} already present; "
            f"statuses: {statuses[0]} copied, {statuses[1]} already present; "
            f"API keys written: {keys}; client certificates written: {client_certs}")


def test_migrate_shows_progress_and_a_summary_and_can_be_run_again(fresh_url, opened):
    sqlite_url, mongomock_url = fresh_url("sqlite", "source"), fresh_url("mongomock", "destination")
    fill(opened(sqlite_url))

    first = migrate("--from", sqlite_url, "--to", mongomock_url)
    assert first.exit_code == 0, first.output
    assert "copying object versions" in first.stderr
    assert first.stdout.strip() == summary(versions=(6, 0), statuses=(3, 0), keys=2, client_certs=2)

    again = migrate("--from", sqlite_url, "--to", mongomock_url)
    assert again.exit_code == 0, again.output
    assert again.stdout.strip() == summary(versions=(0, 6), statuses=(0, 3), keys=2, client_certs=2)


def test_migrate_from_an_empty_store_copies_nothing(fresh_url):
    result = migrate("--from", fresh_url("mongomock", "source"), "--to", fresh_url("sqlite", "destination"))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == summary(versions=(0, 0), statuses=(0, 0), keys=0, client_certs=0)


def test_migrate_fails_with_exit_code_1_when_the_destination_holds_other_content(tmp_path, fresh_url, opened):
    """The message names the object and both stores, the destination's password masked."""
    sqlite_url = fresh_url("sqlite", "source")
    mongomock_url = BACKENDS["mongomock"](tmp_path).replace("mongomock://", f"mongomock://admin:{PASSWORD}@")
    collection = str(uuid.uuid4())
    destination = opened(mongomock_url)
    try:
        destination.add_versions(collection, [other_content(1)])
        opened(sqlite_url).add_versions(collection, [version(1)])

        result = migrate_by_environment(sqlite_url, mongomock_url)
        assert result.exit_code == 1
        assert "admin:***@suite" in result.stderr and f"already holds other data than {sqlite_url}" in result.stderr
        assert version(1).object_id in result.stderr
        assert PASSWORD not in result.output
    finally:
        discard(mongomock_url)


@pytest.mark.parametrize("source_url, destination_url, message", [
    (f"mongodb://admin:{PASSWORD}@db.example/taxii", f"mongodb://admin:{PASSWORD}@db.example/taxii",
     "--from and --to are the same store, mongodb://admin:***@db.example/taxii"),
    (f"ftp://admin:{PASSWORD}@files.example/taxii", "sqlite:///never-opened.db",
     "unsupported storage URL 'ftp://admin:***@files.example/taxii'"),
    (f"mongodb://admin:{PASSWORD}@127.0.0.1:1/taxii?serverSelectionTimeoutMS=300&connectTimeoutMS=300",
     "sqlite:///never-opened.db", "cannot use MongoDB at mongodb://admin:***@127.0.0.1:1/taxii"),
], ids=["the same store twice", "an unsupported scheme", "an unreachable MongoDB"])
def test_migrate_refuses_unusable_urls_without_showing_their_password(source_url, destination_url, message):
    result = migrate_by_environment(source_url, destination_url)
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit)  # a message, not a traceback
    assert message in result.stderr
    assert PASSWORD not in result.output


@pytest.mark.parametrize("option", ["--from", "--to"])
def test_migrate_refuses_a_password_on_its_command_line_and_reads_it_from_the_environment(tmp_path, option):
    """Any user can read a command's arguments in the process list; only its owner reads its environment."""
    sqlite_url = f"sqlite:///{tmp_path / 'store.db'}"
    with_password = BACKENDS["mongomock"](tmp_path).replace("mongomock://", f"mongomock://admin:{PASSWORD}@")
    try:
        arguments = {"--from": sqlite_url, "--to": sqlite_url.replace("store", "copy"), option: with_password}
        refused = migrate("--from", arguments["--from"], "--to", arguments["--to"])
        assert refused.exit_code == 2 and PASSWORD not in refused.output
        variable = "TAXII_MIGRATE_FROM" if option == "--from" else "TAXII_MIGRATE_TO"
        assert "admin:***@suite" in refused.stderr and f"give the URL in the environment variable {variable}" \
            in refused.stderr
        accepted = migrate_by_environment(arguments["--from"], arguments["--to"])
        assert accepted.exit_code == 0, accepted.output
    finally:
        discard(with_password)
