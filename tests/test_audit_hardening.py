"""The audit trail under attack, over HTTP: nobody can flood it row by row or
forge a line of it, a write and its record are one, and a busy store answers
503 instead of 500."""

import sqlite3
from concurrent.futures import ThreadPoolExecutor
import time

import pytest
import requests
from click.testing import CliRunner

from backends import require_sqlite
from conftest import COMMUNITY, TAXII, LiveServer, TaxiiSession, envelope, indicator, write_config
from taxii_server.app import create_app
from taxii_server.audit import MAX_PATH
from taxii_server.cli import main
from taxii_server.config import load_settings
from taxii_server.keys import issue_key
from taxii_server.storage import open_store, sqlite_path
from taxii_server.storage.base import AuditEvent, ObjectQuery
from taxii_server.storage.sqlite import SQLiteStore
from taxii_server.timestamps import now_micros

pytestmark = pytest.mark.every_backend

FAILURES_PER_MINUTE = 20
BOGUS_KEY = "tx_0badc0ffee00_" + "A" * 43


@pytest.fixture
def deployment(tmp_path, storage_url):
    """A server allowing FAILURES_PER_MINUTE failed authentications per address;
    `trail()` flushes this process's bookkeeping and reads the stored trail."""
    config = write_config(tmp_path, storage=storage_url,
                          rate_limit={"failed_authentications_per_minute": FAILURES_PER_MINUTE})
    settings = load_settings(config, environ={})
    store = open_store(settings.storage_url)
    app = create_app(settings, store)
    live = LiveServer(app)

    class Deployment:
        url, path = live.url, config

        @staticmethod
        def key(operator):
            return issue_key(store, settings.secret, operator).raw_key

        @staticmethod
        def trail(**filters):
            app.extensions["taxii"].bookkeeper.flush()
            return store.query_audit(**filters)

        @staticmethod
        def audit_command(*args):
            app.extensions["taxii"].bookkeeper.flush()
            return CliRunner().invoke(main, ["audit", *args, "--config", str(config)])
    Deployment.store = store
    yield Deployment
    live.stop()
    store.close()


def bogus(url: str, path: str, key: str = BOGUS_KEY) -> requests.Response:
    return requests.get(url + path, headers={"Authorization": f"Bearer {key}", "Accept": TAXII})


# -- point 3: failed authentications cannot fill the disk ----------------------------------------------

def test_failed_authentications_are_limited_per_address_and_counted_not_written_one_row_each(deployment):
    long_path = "/api/" + "x" * 4000 + "/"
    started = time.monotonic()
    answers = [bogus(deployment.url, long_path) for _ in range(300)]
    earned_back = (time.monotonic() - started) * FAILURES_PER_MINUTE / 60  # the allowance refills meanwhile

    statuses = [answer.status_code for answer in answers]
    assert statuses[:FAILURES_PER_MINUTE] == [401] * FAILURES_PER_MINUTE
    assert statuses.count(401) <= FAILURES_PER_MINUTE + earned_back + 1
    assert statuses.count(429) >= 300 - FAILURES_PER_MINUTE - earned_back - 1
    limited = [answer for answer in answers if answer.status_code == 429]
    assert all(1 <= int(answer.headers["Retry-After"]) <= 60 for answer in limited)
    failures = deployment.trail(failures_only=True)
    # One row per status and minute (two minutes at most if the burst straddled one), counting all 300.
    assert len(failures) <= 4
    assert sum(row.count for row in failures) == 300
    assert all(len(row.path) <= MAX_PATH for row in failures)


def test_rotating_bogus_key_ids_gain_no_rows_once_the_address_is_limited(deployment):
    for n in range(200):
        bogus(deployment.url, "/api/collections/", key=f"tx_{n:012x}_" + "A" * 43)
    failures = deployment.trail(failures_only=True)
    assert sum(row.count for row in failures) == 200
    # A row per key id while the address is within its allowance; then one counted row, no key id.
    assert len(failures) <= 2 * (FAILURES_PER_MINUTE + 1)
    assert {row.key_id for row in failures if row.status == 429} == {None}


def test_a_genuine_key_from_a_limited_address_is_still_served(deployment):
    for _ in range(FAILURES_PER_MINUTE + 5):
        bogus(deployment.url, "/api/collections/")
    assert TaxiiSession(deployment.url, deployment.key("northtel")).get("/collections/").status_code == 200


# -- point 6: nobody can forge a line of `taxii-server audit` -----------------------------------------

# A line break, then what looks like the regulator deleting something, then a carriage return and
# "clear screen", percent-encoded as a client sends them.
FORGED = ("%0A2026-11-29T09:00:00.000000Z       regulator     5f0c1d2e3a4b   10.0.0.1  200  1  DELETE /api/x"
          "%0D%1B%5B2J").replace(" ", "%20")


def test_a_path_is_stored_as_received_and_the_audit_command_prints_it_on_one_line(deployment):
    bogus(deployment.url, "/api/x" + FORGED)

    (row,) = deployment.trail(failures_only=True)
    assert row.path == "/api/x" + FORGED
    assert not set(row.path) & {"\n", "\r", "\x1b"}
    shown = deployment.audit_command("--failures")
    assert shown.exit_code == 0
    lines = shown.stdout.splitlines()
    assert len(lines) == 2  # the header and the one failed request
    assert not set(shown.stdout) & {"\r", "\x1b"}


def test_a_stored_control_character_is_printed_escaped(deployment):
    """Records written before paths were kept encoded held them decoded."""
    deployment.store.record_audit(AuditEvent(at=now_micros(), method="GET", status=401, client="127.0.0.1",
                                             path="/api/x\n2026-11-29T09:00:00Z regulator DELETE\r\x1b[2J\\"))
    shown = deployment.audit_command("--failures")
    assert shown.stdout.splitlines()[1].endswith("GET /api/x\\x0a2026-11-29T09:00:00Z regulator DELETE\\x0d\\x1b[2J\\\\")
    assert len(shown.stdout.splitlines()) == 2


# -- point 13: the newest rows, how many were left out, and no public fetches among failures ----------

def test_the_audit_command_shows_the_newest_rows_and_says_how_many_it_left_out(deployment):
    northtel = TaxiiSession(deployment.url, deployment.key("northtel"))
    for limit in range(1, 6):
        assert northtel.get(f"/collections/{COMMUNITY}/objects/", params={"limit": limit}).status_code == 200

    shown = deployment.audit_command("--operator", "northtel", "--limit", "2")
    rows = shown.stdout.splitlines()[1:]
    assert [row.rsplit("?", 1)[1] for row in rows] == ["limit=4", "limit=5"]
    assert "3 older rows left out" in shown.stderr


def test_public_api_description_fetches_are_not_failed_authentications(deployment):
    for _ in range(3):
        assert requests.get(deployment.url + "/taxii2/openapi.yaml").status_code == 200
    bogus(deployment.url, "/api/collections/")

    (failure,) = deployment.trail(failures_only=True)
    assert failure.status == 401
    (fetches,) = [row for row in deployment.trail() if row.path == "/taxii2/openapi.yaml"]
    assert (fetches.status, fetches.count, fetches.operator_id) == (200, 3, None)


# -- point 2: a write and its record are one; a busy store answers 503 --------------------------------

def test_the_record_of_a_write_is_stored_with_the_write_without_waiting_for_the_bookkeeping(deployment):
    regulator = TaxiiSession(deployment.url, deployment.key("regulator"))
    assert regulator.post(f"/collections/{COMMUNITY}/objects/", envelope(indicator(1), indicator(2))).status_code == 202
    # Read straight from the store, before this process's bookkeeping thread has written anything.
    (posted,) = deployment.store.query_audit(operator_id="regulator")
    assert (posted.method, posted.status, posted.objects, posted.collection_id) == ("POST", 202, 2, COMMUNITY)


def test_a_write_whose_record_cannot_be_stored_stores_nothing(tmp_path, storage_url):
    require_sqlite(storage_url, "a trigger stands in for a disk that refuses the audit record")
    settings = load_settings(write_config(tmp_path, storage=storage_url), environ={})
    store = open_store(settings.storage_url)
    with sqlite3.connect(sqlite_path(settings.storage_url)) as db:
        db.execute("CREATE TRIGGER refuse BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    event = AuditEvent(at=now_micros(), method="POST", path="/api/", status=202, client="127.0.0.1")
    with pytest.raises(sqlite3.DatabaseError, match="disk full"):
        store.add_versions(COMMUNITY, [_checked(indicator(1))], audit_for=lambda outcomes: event)
    assert store.query(ObjectQuery(collection_id=COMMUNITY, limit=10)).records == []


def _checked(item):
    from taxii_server.validation import check_object
    return check_object(item)


def test_a_write_that_cannot_get_the_store_in_time_answers_503_with_retry_after_and_changes_nothing(tmp_path,
                                                                                                  storage_url):
    require_sqlite(storage_url, "another connection holds SQLite's write lock")
    settings = load_settings(write_config(tmp_path, storage=storage_url), environ={})
    store = SQLiteStore(sqlite_path(settings.storage_url), write_wait=0.2)
    key = issue_key(store, settings.secret, "regulator").raw_key
    live = LiveServer(create_app(settings, store))
    try:
        regulator = TaxiiSession(live.url, key)
        holder = sqlite3.connect(sqlite_path(settings.storage_url), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        busy = regulator.post(f"/collections/{COMMUNITY}/objects/", envelope(indicator(1)))
        holder.execute("ROLLBACK")
        assert busy.status_code == 503
        assert int(busy.headers["Retry-After"]) >= 1
        assert busy.json()["http_status"] == "503"
        assert store.count_versions(COMMUNITY) == 0
        assert regulator.post(f"/collections/{COMMUNITY}/objects/", envelope(indicator(1))).status_code == 202
    finally:
        live.stop()
        store.close()


def test_reads_are_served_while_another_connection_holds_the_write_lock(tmp_path, storage_url):
    """A read commits nothing of its own: its audit record and rate-limit spending wait for the
    bookkeeping thread, and a key's last use is skipped rather than waited for."""
    require_sqlite(storage_url, "another connection holds SQLite's write lock")
    settings = load_settings(write_config(tmp_path, storage=storage_url, rate_limit={"requests_per_minute": 600}),
                             environ={})
    store = SQLiteStore(sqlite_path(settings.storage_url), write_wait=0.2)
    key = issue_key(store, settings.secret, "northtel").raw_key  # never used: its first use would be written
    live = LiveServer(create_app(settings, store))
    try:
        holder = sqlite3.connect(sqlite_path(settings.storage_url), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        answers = [TaxiiSession(live.url, key).get(f"/collections/{COMMUNITY}/objects/") for _ in range(3)]
        holder.execute("ROLLBACK")
        assert [answer.status_code for answer in answers] == [200] * 3
    finally:
        live.stop()
        store.close()


def test_concurrent_big_writes_get_202_or_503_never_500_and_every_stored_write_has_its_record(tmp_path, storage_url):
    require_sqlite(storage_url, "mongomock has no lock to be busy on, and stores thousands of objects slowly")
    settings = load_settings(write_config(tmp_path, storage=storage_url,
                                          api_root={"path": "api", "title": "t", "max_content_length": 1_000_000}),
                             environ={})
    store = SQLiteStore(sqlite_path(settings.storage_url), write_wait=0.05)  # so that some writes meet a busy store
    # Two POSTs per operator at once: one validated, one waiting its turn (a third would get 429, bounded_work.py).
    writers = [issue_key(store, settings.secret, operator).raw_key for operator in ("regulator", "northtel") * 2]
    live = LiveServer(create_app(settings, store))
    per_envelope = 500
    try:
        def post(n):
            objects = [indicator(n * per_envelope + i) for i in range(per_envelope)]
            return TaxiiSession(live.url, writers[n]).post(f"/collections/{COMMUNITY}/objects/", envelope(*objects))
        with ThreadPoolExecutor(len(writers)) as pool:
            answers = list(pool.map(post, range(len(writers))))
        statuses = [answer.status_code for answer in answers]
        assert set(statuses) <= {202, 503}, [answer.text[:200] for answer in answers]
        assert all(int(answer.headers["Retry-After"]) >= 1 for answer in answers if answer.status_code == 503)
        assert store.count_versions(COMMUNITY) == per_envelope * statuses.count(202)
        # Read straight from the store: the records of the writes are there without any flush.
        written = [event for event in store.query_audit() if event.method == "POST" and event.status == 202]
        assert [event.objects for event in written] == [per_envelope] * statuses.count(202)
    finally:
        live.stop()
        store.close()
