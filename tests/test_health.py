"""Health probes: /healthz says the process answers, /readyz that the store answers a
query in time. Both are served to anyone, reveal nothing but their verdict, and leave
no trace in the audit trail or the rate limit."""

import sqlite3

import pytest
import requests

from backends import require_sqlite
from conftest import LiveServer, write_config
from taxii_server.app import create_app
from taxii_server.config import load_settings
from taxii_server.storage import open_store, sqlite_path

pytestmark = pytest.mark.every_backend


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_a_probe_answers_ok_without_credentials_and_says_nothing_else(server, path):
    answer = requests.get(server.url + path)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json() == {"status": "ok"}
    assert answer.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_a_probe_ignores_what_a_taxii_request_must_carry(server, path):
    """Load balancers send no TAXII Accept header, and a bad credential does not matter here."""
    answer = requests.get(server.url + path, headers={"Accept": "text/html", "Authorization": "Bearer nonsense"})
    assert answer.status_code == 200


def test_probes_write_no_audit_record(app, server, store, northtel):
    for _ in range(3):
        requests.get(server.url + "/healthz")
        requests.get(server.url + "/readyz")
    northtel.get("/collections/")
    app.extensions["taxii"].bookkeeper.flush()  # reads are written to the trail in batches
    assert [event.path for event in store.query_audit()] == ["/api/collections/"]


def test_probes_do_not_count_against_a_rate_limit(tmp_path, storage_url):
    settings = load_settings(write_config(tmp_path, storage=storage_url, rate_limit={"requests_per_minute": 1}),
                             environ={})
    live = LiveServer(create_app(settings, open_store(storage_url)))
    try:
        assert [requests.get(live.url + "/readyz").status_code for _ in range(5)] == [200] * 5
    finally:
        live.stop()


def test_the_store_answers_readiness_within_the_deadline(store):
    assert store.ready(2.0) is True


def test_readyz_says_unavailable_when_the_store_cannot_answer(server, settings, store):
    require_sqlite(settings.storage_url, "breaks the database file under the running server")
    with sqlite3.connect(sqlite_path(settings.storage_url)) as db:
        db.execute("DROP TABLE collection_clock")
    answer = requests.get(server.url + "/readyz")
    assert answer.status_code == 503
    assert answer.json() == {"status": "unavailable"}
    assert requests.get(server.url + "/healthz").status_code == 200  # the process itself still answers

