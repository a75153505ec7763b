"""The delivery lag per licensee on /metrics: how far behind what was published to it each
licensee's reading is, read from the compliance records at each scrape.

Licensees poll over real HTTP; the regulator publishes; a scrape with the metrics token reads
the gauges. Every case runs on every storage backend.
"""

from __future__ import annotations

import secrets
import sqlite3
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from backends import require_shared_store, require_sqlite
from conftest import ADVISORIES, COMMUNITY, OPERATORS, TaxiiSession, envelope, free_port, indicator, write_config
from test_crash_safety import TaxiiServerProcess
from taxii_server.config import load_settings
from taxii_server.compliance.deliveries import EXTENSION
from taxii_server.keys import issue_key
from taxii_server.storage import open_store, sqlite_path
from taxii_server.storage.base import DeliveredPage
from taxii_server.timestamps import now_micros

pytestmark = pytest.mark.every_backend

TOKEN = secrets.token_hex(24)
LAG = "taxii_delivery_lag_seconds"
LAST_POLL = "taxii_delivery_last_poll_timestamp_seconds"
REGULATOR_IDENTITY = "identity--00000000-0000-4000-8000-0000000000aa"
OBJECTS = f"/collections/{ADVISORIES}/objects/"


@pytest.fixture
def config_path(tmp_path, storage_url):
    (tmp_path / "metrics.token").write_text(TOKEN + "\n")
    operators = [*OPERATORS, {"id": "eastlink", "name": "EastLink", "role": "licensee"}]
    return write_config(tmp_path, storage=storage_url, operators=operators,
                        metrics={"scrape_token_file": "metrics.token"})


def gauges(server, name: str, url: str | None = None) -> dict[str, float]:
    """One scrape (of the server's /metrics, or of `url` without a token): the family's value per licensee."""
    answer = requests.get(url or server.url + "/metrics", headers={} if url else {"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200, answer.text
    family = next(f for f in text_string_to_metric_families(answer.text) if f.name == name)
    assert all(set(sample.labels) == {"licensee"} for sample in family.samples)
    return {sample.labels["licensee"]: sample.value for sample in family.samples}


def flushed(app) -> None:
    """What this server process buffered is written, as its background thread does every second."""
    app.extensions[EXTENSION].recorder.flush()


def advisory(n: int, modified: str = "2026-01-01T00:00:00.000Z") -> dict:
    return indicator(n, modified=modified, created_by_ref=REGULATOR_IDENTITY)


def publish(session, collection_id: str, *objects: dict) -> None:
    answer = session.post(f"/collections/{collection_id}/objects/", envelope(*objects))
    assert answer.status_code == 202 and answer.json()["failure_count"] == 0, answer.text


def newest_added(store) -> int:
    """The `date_added` of the newest advisory version, in microseconds."""
    return store.recent_versions(ADVISORIES, 1, with_body=False)[0].date_added


def fetch_everything(session, **params) -> None:
    params = {"limit": 2, **params}
    while True:
        answer = session.get(OBJECTS, params=params)
        assert answer.status_code == 200, answer.text
        if not answer.json().get("more"):
            return
        params = {"next": answer.json()["next"]}


# --- the lag -----------------------------------------------------------------------------------------

def test_every_configured_licensee_is_labelled_and_nothing_else(server, regulator, app):
    publish(regulator, ADVISORIES, advisory(1))
    regulator.get(OBJECTS)  # the regulator reads the advisories too, but is no licensee
    flushed(app)
    licensees = {op["id"] for op in OPERATORS if op["role"] == "licensee"} | {"eastlink"}
    assert set(gauges(server, LAG)) == licensees
    assert set(gauges(server, LAST_POLL)) == licensees


def test_with_nothing_published_no_licensee_lags(server):
    assert set(gauges(server, LAG).values()) == {0.0}


def test_an_advisory_nobody_fetched_makes_every_licensee_lag_by_its_age_and_the_lag_grows(server, regulator, store):
    publish(regulator, ADVISORIES, advisory(1))
    added = newest_added(store)
    before = now_micros()
    first = gauges(server, LAG)
    after = now_micros()
    assert all((before - added) / 1e6 - 1e-6 <= first[licensee] <= (after - added) / 1e6 + 1e-6 for licensee in first)
    time.sleep(0.05)
    second = gauges(server, LAG)
    assert all(second[licensee] > first[licensee] for licensee in first)


def test_a_licensee_that_fetches_everything_is_back_to_zero_and_the_others_keep_lagging(
        server, regulator, northtel, southwave, app, store):
    publish(regulator, ADVISORIES, *(advisory(n) for n in range(5)))
    southwave.get(OBJECTS, params={"limit": 2})  # only the first page: still behind
    fetch_everything(northtel)
    flushed(app)
    before = gauges(server, LAG)
    assert before["northtel"] == 0
    assert 0 < before["southwave"] <= before["eastlink"]  # eastlink waits for the first, southwave for the third
    while store.compact_deliveries(1000):  # the per-version records say the same as the pages did
        pass
    after = gauges(server, LAG)
    assert after["northtel"] == 0 and after["southwave"] > before["southwave"]


def test_a_fetch_not_yet_written_by_the_server_process_does_not_count_yet(server, regulator, northtel, app):
    publish(regulator, ADVISORIES, advisory(1))
    fetch_everything(northtel)
    assert gauges(server, LAG)["northtel"] > 0  # still in this process's buffer
    flushed(app)
    assert gauges(server, LAG)["northtel"] == 0


def test_a_new_version_makes_an_up_to_date_licensee_lag_until_it_polls_again(server, regulator, northtel, app, store):
    publish(regulator, ADVISORIES, advisory(1), advisory(2))
    fetch_everything(northtel)
    flushed(app)
    assert gauges(server, LAG)["northtel"] == 0
    last = northtel.get(OBJECTS).headers["X-TAXII-Date-Added-Last"]

    publish(regulator, ADVISORIES, advisory(2, modified="2026-03-01T00:00:00.000Z"))
    added = newest_added(store)
    lag = gauges(server, LAG)["northtel"]
    assert 0 < lag <= (now_micros() - added) / 1e6 + 1e-6  # the new version's age, not the first one's
    fetch_everything(northtel, added_after=last)
    flushed(app)
    assert gauges(server, LAG)["northtel"] == 0


def test_collections_not_published_to_the_licensee_do_not_count(server, regulator, northtel, settings):
    publish(regulator, COMMUNITY, indicator(1))  # not tracked
    own = settings.collection("northtel-reports").id
    publish(regulator, own, advisory(2))  # tracked, but the licensee's own: it reports there
    publish(northtel, own, indicator(3))
    assert set(gauges(server, LAG).values()) == {0.0}


def test_the_lag_counts_only_versions_added_within_the_retention_period(server, regulator, store):
    publish(regulator, ADVISORIES, advisory(1))
    added = newest_added(store)
    assert store.oldest_after_last_delivered(ADVISORIES, ("northtel",), added) == {"northtel": added}
    assert store.oldest_after_last_delivered(ADVISORIES, ("northtel",), added + 1) == {}


# --- last poll ---------------------------------------------------------------------------------------

def test_the_last_poll_is_that_of_a_collection_published_to_the_licensee(server, regulator, northtel, app, settings):
    publish(regulator, ADVISORIES, advisory(1))
    northtel.get(f"/collections/{settings.collection('northtel-reports').id}/objects/")  # its own: not counted
    flushed(app)
    assert gauges(server, LAST_POLL)["northtel"] == 0
    before = now_micros()
    northtel.get(OBJECTS, params={"match[type]": "report"})  # an empty page is a poll too
    after = now_micros()
    flushed(app)
    polls = gauges(server, LAST_POLL)
    assert before / 1e6 <= polls["northtel"] <= after / 1e6
    assert polls["southwave"] == 0


def test_records_that_cannot_be_read_leave_out_the_delivery_gauges_not_the_rest(server, settings):
    require_sqlite(settings.storage_url, "breaks the database file under the running server")
    with sqlite3.connect(sqlite_path(settings.storage_url)) as db:
        db.execute("ALTER TABLE compliance_deliveries RENAME TO compliance_deliveries_gone")
    answer = requests.get(server.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200
    names = {family.name for family in text_string_to_metric_families(answer.text)}
    assert LAG not in names and LAST_POLL not in names
    assert {"taxii_http_requests", "taxii_store_object_versions"} <= names


# --- several workers, one answer ---------------------------------------------------------------------

def test_every_worker_and_the_arbiters_listener_report_the_same_lag(tmp_path, storage_url, config_path):
    """A real `serve --workers 2`: the licensee's pages may be served by either worker, each of
    which writes its own buffer within a second; whichever process answers a scrape reads the store."""
    require_shared_store(storage_url)
    settings = load_settings(config_path, environ={})
    store = open_store(settings.storage_url)
    keys = {operator: issue_key(store, settings.secret, operator).raw_key for operator in ("regulator", "northtel")}
    store.close()
    metrics_port = free_port()
    server = TaxiiServerProcess(config_path, tmp_path / "serve.log", workers=2,
                                args=("--metrics-bind", f"127.0.0.1:{metrics_port}"))
    server.start()
    try:
        publish(TaxiiSession(server.url, keys["regulator"]), ADVISORIES, *(advisory(n) for n in range(6)))
        assert gauges(server, LAG)["northtel"] > 0
        fetch_everything(TaxiiSession(server.url, keys["northtel"]))
        for _ in range(300):  # until both workers' flushers (one a second) have written
            if gauges(server, LAG)["northtel"] == 0:
                break
            time.sleep(0.1)
        scrapes = [gauges(server, LAG) for _ in range(4)]
        scrapes.append(gauges(server, LAG, url=f"http://127.0.0.1:{metrics_port}/metrics"))
        assert [lags["northtel"] for lags in scrapes] == [0] * 5
        assert all(lags["southwave"] > 0 for lags in scrapes)
        assert not server.server_errors()
    finally:
        server.stop()


# --- the store's answer ------------------------------------------------------------------------------

def test_the_store_reads_deliveries_both_from_pages_not_yet_compacted_and_from_per_version_records(
        server, regulator, store):
    publish(regulator, ADVISORIES, *(advisory(n) for n in range(4)))
    added = sorted(v.date_added for v in store.recent_versions(ADVISORIES, 10, with_body=False))
    versions = [(date_added, f"indicator--{n}", "v") for n, date_added in enumerate(added)]
    readers = ("northtel", "southwave")
    assert store.oldest_after_last_delivered(ADVISORIES, readers, 0) == {"northtel": added[0], "southwave": added[0]}

    store.record_deliveries([DeliveredPage("northtel", ADVISORIES, now_micros(), tuple(versions[:2]))], [])
    assert store.oldest_after_last_delivered(ADVISORIES, readers, 0) == {"northtel": added[2], "southwave": added[0]}
    while store.compact_deliveries(1000):
        pass
    assert store.oldest_after_last_delivered(ADVISORIES, readers, 0) == {"northtel": added[2], "southwave": added[0]}
    store.record_deliveries([DeliveredPage("southwave", ADVISORIES, now_micros(), tuple(versions[3:]))], [])
    assert store.oldest_after_last_delivered(ADVISORIES, readers, 0) == {"northtel": added[2]}
    assert store.oldest_after_last_delivered(ADVISORIES, (), 0) == {}
