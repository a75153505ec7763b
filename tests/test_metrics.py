"""Prometheus metrics: what is counted, who may read it, and that a scrape adds up every
gunicorn worker's counts (a real `taxii-server serve --workers 2`)."""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from backends import require_sqlite
from conftest import COMMUNITY, REPO, LiveServer, TaxiiSession, envelope, free_port, indicator, write_config
from taxii_server.app import create_app
from taxii_server.config import ConfigError, load_settings
from taxii_server.keys import issue_key
from taxii_server.storage import open_store, sqlite_path
from test_crash_safety import TaxiiServerProcess

pytestmark = pytest.mark.every_backend

TOKEN = secrets.token_hex(24)
REQUESTS_PER_MINUTE = 40


@pytest.fixture
def config_path(tmp_path, storage_url):
    (tmp_path / "metrics.token").write_text(TOKEN + "\n")
    return write_config(tmp_path, storage=storage_url, metrics={"scrape_token_file": "metrics.token"},
                        rate_limit={"requests_per_minute": REQUESTS_PER_MINUTE})


class Samples(dict):
    """One scrape: (sample name, labels) -> value."""

    def value(self, name: str, **labels) -> float:
        return self.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape(url: str, token: str | None = TOKEN) -> Samples:
    answer = requests.get(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("text/plain; version=")
    samples = Samples()
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def grown(before: Samples, after: Samples, name: str, **labels) -> float:
    return after.value(name, **labels) - before.value(name, **labels)


# --- who may read them ---------------------------------------------------------------------------

def test_metrics_are_served_to_the_scrape_token_only_never_to_an_operators_key(server, keys):
    url = server.url + "/metrics"
    refused = [
        requests.get(url),
        requests.get(url, headers={"Authorization": f"Bearer {TOKEN[:-1]}x"}),
        requests.get(url, headers={"Authorization": f"Bearer {keys['regulator']}"}),
        requests.get(url, headers={"Authorization": f"Token {TOKEN}"}),
        requests.get(url, auth=("regulator", keys["regulator"])),
        requests.get(url, auth=("metrics", TOKEN)),
    ]
    assert [answer.status_code for answer in refused] == [401] * len(refused)
    assert refused[0].headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert "taxii_http_requests_total" not in "".join(answer.text for answer in refused)
    assert "taxii_http_requests_total" in requests.get(url, headers={"Authorization": f"Bearer {TOKEN}"}).text


def test_without_a_scrape_token_configured_there_are_no_metrics(tmp_path, storage_url):
    settings = load_settings(write_config(tmp_path, storage=storage_url), environ={})
    live = LiveServer(create_app(settings, open_store(storage_url)))
    try:
        assert requests.get(live.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404
    finally:
        live.stop()


def test_a_scrape_writes_no_audit_record(server, store):
    scrape(server.url + "/metrics")
    requests.get(server.url + "/metrics")
    assert store.query_audit() == []


# --- what is counted -----------------------------------------------------------------------------

def test_requests_are_counted_by_endpoint_method_and_status_with_their_latency(server, northtel):
    before = scrape(server.url + "/metrics")
    northtel.get("/collections/")
    northtel.get("/collections/")
    TaxiiSession(server.url, None).get("/collections/")
    after = scrape(server.url + "/metrics")

    listing = {"endpoint": "collections.list_collections", "method": "GET"}
    assert grown(before, after, "taxii_http_requests_total", **listing, status="200") == 2
    assert grown(before, after, "taxii_http_requests_total", **listing, status="401") == 1
    assert grown(before, after, "taxii_http_request_duration_seconds_count", **listing) == 3
    assert grown(before, after, "taxii_http_request_duration_seconds_bucket", **listing, le="+Inf") == 3
    assert grown(before, after, "taxii_http_request_duration_seconds_sum", **listing) > 0
    assert grown(before, after, "taxii_authentication_failures_total") == 1


def test_objects_ingested_rejected_and_served_are_counted_per_collection(server, northtel):
    before = scrape(server.url + "/metrics")
    invalid = {**indicator(3), "pattern": "not a pattern"}
    posted = northtel.post(f"/collections/{COMMUNITY}/objects/", envelope(indicator(1), indicator(2), invalid))
    assert posted.json()["failure_count"] == 1
    northtel.post(f"/collections/{COMMUNITY}/objects/", envelope(indicator(1)))  # an exact duplicate is accepted
    assert len(northtel.get(f"/collections/{COMMUNITY}/objects/").json()["objects"]) == 2
    northtel.get(f"/collections/{COMMUNITY}/manifest/")
    after = scrape(server.url + "/metrics")

    assert grown(before, after, "taxii_objects_ingested_total", collection="community") == 3
    assert grown(before, after, "taxii_objects_rejected_total", collection="community") == 1
    assert grown(before, after, "taxii_objects_served_total", collection="community") == 4
    assert after.value("taxii_store_object_versions", collection="community") == 2
    assert after.value("taxii_store_object_versions", collection="advisories") == 0


def test_requests_refused_by_the_rate_limit_are_counted(server, northtel):
    before = scrape(server.url + "/metrics")
    statuses = [northtel.get("/collections/").status_code for _ in range(2 * REQUESTS_PER_MINUTE + 1)]
    after = scrape(server.url + "/metrics")
    assert 429 in statuses
    assert grown(before, after, "taxii_rate_limited_total") == statuses.count(429)


def test_the_store_reports_its_size_in_bytes_where_the_backend_can_tell(server, store):
    size = scrape(server.url + "/metrics").value("taxii_store_size_bytes")
    if store.size_bytes() is None:  # mongomock
        assert size == 0
    else:
        assert size > 0


# --- several workers, one answer ------------------------------------------------------------------

def test_a_scrape_adds_up_every_workers_counts(tmp_path):
    """A real `serve --workers 2`: whichever worker answers the scrape, and the arbiter's own
    listener (--metrics-bind), count every request of both workers, and only of this run."""
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_4242424.db").write_bytes(b"left by an earlier run")
    (tmp_path / "metrics.token").write_text(TOKEN)
    config_path = write_config(tmp_path, metrics={"scrape_token_file": "metrics.token"})
    settings = load_settings(config_path, environ={})
    key = issue_key(open_store(settings.storage_url), settings.secret, "northtel").raw_key
    metrics_port = free_port()
    server = TaxiiServerProcess(config_path, tmp_path / "serve.log", workers=2,
                                args=("--log-format", "json", "--metrics-bind", f"127.0.0.1:{metrics_port}"),
                                environ={"PROMETHEUS_MULTIPROC_DIR": str(folder)})
    server.start()
    try:
        assert not (folder / "counter_4242424.db").exists()
        baseline = scrape(server.url + "/metrics").value(
            "taxii_http_requests_total", endpoint="discovery.discovery", method="GET", status="200")

        def discover(_):
            answer = requests.get(server.url + "/taxii2/", headers={"Authorization": f"Bearer {key}"})
            assert answer.status_code == 200

        sent = 0
        with ThreadPoolExecutor(8) as pool:
            for _ in range(20):  # bursts until both workers have served some
                list(pool.map(discover, range(16)))
                sent += 16
                if len(_workers_that_served(server.log_path, "/taxii2/")) == 2:
                    break
        assert len(_workers_that_served(server.log_path, "/taxii2/")) == 2

        discovery = {"endpoint": "discovery.discovery", "method": "GET", "status": "200"}
        for _ in range(4):  # several scrapes, answered by either worker
            assert scrape(server.url + "/metrics").value("taxii_http_requests_total", **discovery) == baseline + sent
        from_arbiter = scrape(f"http://127.0.0.1:{metrics_port}/metrics", token=None)
        assert from_arbiter.value("taxii_http_requests_total", **discovery) == baseline + sent
    finally:
        server.stop()


def _workers_that_served(log_path, path: str) -> set[int]:
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    return {line["process"] for line in lines if line.get("logger") == "taxii_server.access" and line["path"] == path}


def test_the_grafana_dashboard_asks_only_for_metrics_the_server_exports(server, northtel, store):
    northtel.post(f"/collections/{COMMUNITY}/objects/", envelope(indicator(1), {**indicator(2), "pattern": "x"}))
    northtel.get(f"/collections/{COMMUNITY}/objects/")
    exported = {name for name, _ in scrape(server.url + "/metrics")}
    dashboard = json.loads((REPO / "deploy" / "grafana-dashboard.json").read_text())
    queried = {name for panel in dashboard["panels"] for target in panel.get("targets", [])
               for name in re.findall(r"\btaxii_[a-z_]+", target["expr"])}
    if store.size_bytes() is None:  # mongomock cannot tell; a real MongoDB and SQLite can
        queried.discard("taxii_store_size_bytes")
    assert queried and queried <= exported


# --- the scrape token in the configuration ----------------------------------------------------------

def test_the_scrape_token_comes_from_its_file_or_the_environment(tmp_path):
    (tmp_path / "metrics.token").write_text(TOKEN + "\n")
    config = write_config(tmp_path, metrics={"scrape_token_file": "metrics.token"})
    assert load_settings(config, environ={}).metrics_token == TOKEN.encode()
    assert load_settings(config, environ={"TAXII_METRICS_TOKEN": "e" * 40}).metrics_token == b"e" * 40
    assert load_settings(write_config(tmp_path), environ={}).metrics_token is None


@pytest.mark.parametrize("content, message", [("too-short", "at least 32 characters"), (None, "cannot read")])
def test_an_unusable_scrape_token_stops_the_server_from_starting(tmp_path, content, message):
    if content is not None:
        (tmp_path / "metrics.token").write_text(content)
    config = write_config(tmp_path, metrics={"scrape_token_file": "metrics.token"})
    with pytest.raises(ConfigError, match=message):
        load_settings(config, environ={})


def test_a_store_that_cannot_answer_leaves_out_its_gauges_not_the_request_counts(server, settings, store):
    require_sqlite(settings.storage_url, "breaks the database file under the running server")
    requests.get(server.url + "/healthz")
    with sqlite3.connect(sqlite_path(settings.storage_url)) as db:
        db.execute("ALTER TABLE objects RENAME TO objects_gone")
    samples = scrape(server.url + "/metrics")
    assert not [name for name, _ in samples if name.startswith("taxii_store_")]
    assert ("taxii_rate_limited_total", ()) in samples
    assert samples.value("taxii_http_requests_total", endpoint="health.live", method="GET", status="200") >= 1
