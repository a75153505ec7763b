"""What a crash can lose of the bookkeeping, on a real `taxii-server serve`:
reads are recorded in batches at least every second, so kill -9 loses at most
the last second of read records; a write's record is committed with the write,
so no acknowledged write ever lacks one; a graceful stop loses nothing."""

import time

from conftest import COMMUNITY, TaxiiSession, envelope, indicator, write_config
from test_crash_safety import TaxiiServerProcess
from taxii_server.bookkeeping import FLUSH_SECONDS
from taxii_server.config import load_settings
from taxii_server.keys import issue_key
from taxii_server.storage import open_store

OBJECTS = f"/collections/{COMMUNITY}/objects/"


def serving(tmp_path):
    config = write_config(tmp_path)
    settings = load_settings(config, environ={})
    store = open_store(settings.storage_url)
    keys = {operator: issue_key(store, settings.secret, operator).raw_key for operator in ("northtel", "regulator")}
    store.close()
    server = TaxiiServerProcess(config, tmp_path / "serve.log", workers=2)
    server.start()
    return server, settings, keys


def reads(server, key, limit: int, count: int) -> None:
    """`count` reads, told apart from other batches by their `limit`."""
    session = TaxiiSession(server.url, key)
    assert {session.get(OBJECTS, params={"limit": limit}).status_code for _ in range(count)} == {200}


def recorded(settings, operator: str):
    store = open_store(settings.storage_url)
    try:
        return store.query_audit(operator_id=operator, limit=100_000)
    finally:
        store.close()


def test_kill_9_loses_at_most_the_reads_of_the_last_second_and_no_write_record(tmp_path):
    server, settings, keys = serving(tmp_path)
    try:
        reads(server, keys["northtel"], limit=7, count=40)
        time.sleep(FLUSH_SECONDS + 1)  # more than a flush interval: these must all be written now
        regulator = TaxiiSession(server.url, keys["regulator"])
        posts = [regulator.post(OBJECTS, envelope(indicator(n))).status_code for n in range(5)]
        reads(server, keys["northtel"], limit=8, count=20)
    finally:
        server.kill()

    read_paths = [event.path for event in recorded(settings, "northtel")]
    assert read_paths.count(f"/api{OBJECTS}?limit=7") == 40
    assert read_paths.count(f"/api{OBJECTS}?limit=8") <= 20  # the last second: possibly lost
    assert posts == [202] * 5
    written = [event for event in recorded(settings, "regulator") if event.method == "POST"]
    assert [(event.status, event.objects) for event in written] == [(202, 1)] * 5


def test_a_graceful_stop_writes_every_record_first(tmp_path):
    server, settings, keys = serving(tmp_path)
    try:
        reads(server, keys["northtel"], limit=9, count=30)
    finally:
        server.stop()  # straight after the reads: nothing has had a second to be flushed
    read_paths = [event.path for event in recorded(settings, "northtel")]
    assert read_paths.count(f"/api{OBJECTS}?limit=9") == 30
