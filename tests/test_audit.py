"""The audit trail: every request is recorded, failed authentications too,
and the application can only ever append to it."""

import sqlite3

import pytest
from click.testing import CliRunner

from backends import require_sqlite
from conftest import ADVISORIES, COMMUNITY, TaxiiSession, envelope, indicator
from taxii_server.cli import main
from taxii_server.storage import sqlite_path


# Every case runs once per storage backend.
pytestmark = pytest.mark.every_backend


@pytest.fixture
def events(app, store):
    """The trail as stored, once this process has written what it holds (reads are written in batches)."""
    def read(**filters):
        app.extensions["taxii"].bookkeeper.flush()
        return store.query_audit(**filters)
    return read


def test_an_authenticated_request_is_recorded_with_who_what_where_and_how_many(northtel, store, keys, events):
    northtel.post(f"/collections/{COMMUNITY}/objects/", envelope(indicator(1), indicator(2)))
    northtel.get(f"/collections/{COMMUNITY}/objects/", params={"match[type]": "indicator"})

    posted, polled = events(operator_id="northtel")
    key_id = keys["northtel"].split("_")[1]
    assert (posted.method, posted.status, posted.objects, posted.collection_id) == ("POST", 202, 2, COMMUNITY)
    assert posted.path == f"/api/collections/{COMMUNITY}/objects/"
    assert (polled.method, polled.status, polled.objects) == ("GET", 200, 2)
    assert polled.path == f"/api/collections/{COMMUNITY}/objects/?match%5Btype%5D=indicator"
    assert polled.key_id == posted.key_id == key_id
    assert polled.client == "127.0.0.1"
    assert polled.at > posted.at


def test_refused_requests_are_recorded_with_their_status(northtel, store, events):
    northtel.post(f"/collections/{ADVISORIES}/objects/", envelope(indicator(1)))
    northtel.get("/collections/00000000-0000-4000-8000-000000000000/objects/")

    refused_write, unknown = events(operator_id="northtel")
    assert (refused_write.status, refused_write.objects, refused_write.collection_id) == (403, 0, ADVISORIES)
    assert (unknown.status, unknown.collection_id) == (404, None)


def test_a_deletion_records_how_many_versions_went(regulator, store, events):
    regulator.post(f"/collections/{COMMUNITY}/objects/",
                   envelope(indicator(1), indicator(1, modified="2026-02-01T00:00:00.000Z")))
    regulator.delete(f"/collections/{COMMUNITY}/objects/{indicator(1)['id']}/")
    deletion = events(operator_id="regulator")[-1]
    assert (deletion.method, deletion.status, deletion.objects) == ("DELETE", 200, 2)


def test_failed_authentications_are_recorded_with_the_presented_key_id_only(server, store, keys, events):
    forged = keys["northtel"][:-5] + "AAAAA"
    TaxiiSession(server.url, forged).get("/collections/")
    TaxiiSession(server.url, None).get("/collections/")

    wrong_secret, no_key = events(failures_only=True)
    assert (wrong_secret.operator_id, wrong_secret.key_id, wrong_secret.status) == (None, forged.split("_")[1], 401)
    assert (no_key.operator_id, no_key.key_id, no_key.status) == (None, None, 401)
    assert events(operator_id="northtel") == []


def test_the_trail_never_holds_a_key_secret(northtel, server, store, keys, settings, events):
    TaxiiSession(server.url, keys["southwave"][:-1] + "x").get("/collections/")
    northtel.get("/collections/")
    recorded = repr(events())
    for key in keys.values():
        assert key not in recorded and key.split("_", 2)[2] not in recorded


@pytest.mark.parametrize("statement", ["UPDATE audit_log SET status = 200", "DELETE FROM audit_log"])
def test_the_database_refuses_to_rewrite_or_erase_the_trail(northtel, store, settings, statement, events):
    require_sqlite(settings.storage_url, "its triggers guard the trail; on MongoDB the server's role does (README)")
    northtel.get("/collections/")
    assert len(events()) == 1
    with sqlite3.connect(sqlite_path(settings.storage_url)) as db, pytest.raises(sqlite3.DatabaseError,
                                                                                match="append-only"):
        db.execute(statement)
    assert len(events()) == 1


def test_the_storage_interface_offers_no_way_to_change_the_trail(store):
    assert not [name for name in dir(store) if "audit" in name and not name.startswith(("record_", "query_"))]


def test_audit_command_filters_by_operator_time_and_failures(northtel, regulator, server, store, config_path, events):
    northtel.get("/collections/")
    regulator.get("/collections/")
    TaxiiSession(server.url, "tx_000000000000_" + "A" * 43).get("/collections/")
    events()  # written
    runner = CliRunner()

    by_operator = runner.invoke(main, ["audit", "--operator", "northtel", "--since", "1h", "--config", str(config_path)])
    failures = runner.invoke(main, ["audit", "--failures", "--config", str(config_path)])
    future = runner.invoke(main, ["audit", "--since", "2999-01-01T00:00:00Z", "--config", str(config_path)])

    assert by_operator.exit_code == failures.exit_code == future.exit_code == 0
    rows = by_operator.stdout.splitlines()[1:]
    assert len(rows) == 1 and "northtel" in rows[0] and "GET /api/collections/" in rows[0]
    failure_rows = failures.stdout.splitlines()[1:]
    assert len(failure_rows) == 1 and "000000000000" in failure_rows[0] and " 401 " in failure_rows[0]
    assert future.stdout.splitlines()[1:] == []
