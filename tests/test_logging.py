"""Structured logs: one line per request naming who asked what, with a request id
shared with the client; as JSON for a log pipeline; never a key or a secret."""

from __future__ import annotations

import base64
import json
import logging
import re
import sqlite3

import pytest
import requests

from conftest import COMMUNITY, TAXII, TaxiiSession, envelope, indicator, write_config
from taxii_server.config import load_settings
from taxii_server.keys import issue_key
from taxii_server.storage import open_store, sqlite_path
from test_crash_safety import TaxiiServerProcess

pytestmark = pytest.mark.every_backend

REQUEST_FIELDS = {"time", "level", "logger", "request_id", "operator", "key_id", "method", "path", "collection",
                  "status", "objects", "duration_ms", "client"}


def key_id(raw_key: str) -> str:
    return raw_key.split("_")[1]


def secret_part(raw_key: str) -> str:
    return raw_key.split("_", 2)[2]


# --- request ids -----------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/taxii2/", "/api/collections/", "/healthz", "/no/such/url"])
def test_a_callers_request_id_comes_back_whatever_the_answer(server, path):
    answer = requests.get(server.url + path, headers={"X-Request-ID": "lb-7f3a.42:retry-1"})
    assert answer.headers["X-Request-ID"] == "lb-7f3a.42:retry-1"


def test_a_request_without_an_id_gets_a_new_one_each_time(server):
    ids = {requests.get(server.url + "/healthz").headers["X-Request-ID"] for _ in range(3)}
    assert len(ids) == 3 and all(re.fullmatch(r"[0-9a-f]{32}", request_id) for request_id in ids)


@pytest.mark.parametrize("unsafe", ["x" * 129, "two words", "line\tbreak", "<script>", "ключ", "a\"b"])
def test_an_unsafe_request_id_is_replaced_not_echoed(server, unsafe):
    answer = requests.get(server.url + "/healthz", headers={"X-Request-ID": unsafe.encode()})
    assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["X-Request-ID"])


def test_an_api_key_sent_as_request_id_is_neither_echoed_nor_logged(server, keys, caplog):
    caplog.set_level(logging.DEBUG)
    answer = requests.get(server.url + "/healthz", headers={"X-Request-ID": keys["northtel"]})
    assert answer.headers["X-Request-ID"] != keys["northtel"]
    assert secret_part(keys["northtel"]) not in caplog.text + repr([r.__dict__ for r in caplog.records])


# --- the request line ------------------------------------------------------------------------------

def test_each_request_is_logged_once_with_who_what_and_how_it_ended(northtel, keys, caplog):
    caplog.set_level(logging.INFO, logger="taxii_server.access")
    northtel.post(f"/collections/{COMMUNITY}/objects/", envelope(indicator(1), indicator(2)),
                  headers={"X-Request-ID": "poll-1"})
    [line] = [r for r in caplog.records if r.name == "taxii_server.access"]
    assert (line.request_id, line.operator, line.key_id) == ("poll-1", "northtel", key_id(keys["northtel"]))
    assert (line.method, line.path, line.collection, line.status, line.objects) == (
        "POST", f"/api/collections/{COMMUNITY}/objects/", COMMUNITY, 202, 2)
    assert line.duration_ms > 0 and line.client == "127.0.0.1" and line.levelno == logging.INFO


def test_probes_are_logged_only_at_debug(server, caplog):
    caplog.set_level(logging.INFO, logger="taxii_server.access")
    requests.get(server.url + "/healthz")
    requests.get(server.url + "/readyz")
    assert [r for r in caplog.records if r.name == "taxii_server.access"] == []


def test_a_refused_scrape_is_logged_as_a_warning(server, caplog):
    caplog.set_level(logging.INFO, logger="taxii_server.access")
    requests.get(server.url + "/metrics", headers={"Authorization": "Bearer guess"})
    [line] = [r for r in caplog.records if r.name == "taxii_server.access"]
    assert (line.levelno, line.path, line.status) == (logging.WARNING, "/metrics", 404)


# --- a real server, logging JSON -------------------------------------------------------------------

@pytest.fixture
def deployment(tmp_path):
    config_path = write_config(tmp_path)
    settings = load_settings(config_path, environ={})
    store = open_store(settings.storage_url)
    keys = {operator: issue_key(store, settings.secret, operator).raw_key for operator in ("northtel", "regulator")}
    return config_path, settings, keys


def serve(tmp_path, config_path, log_format: str) -> TaxiiServerProcess:
    server = TaxiiServerProcess(config_path, tmp_path / f"serve-{log_format}.log", workers=2,
                                args=("--log-format", log_format))
    server.start()
    return server


def exercise(url: str, keys: dict[str, str]) -> None:
    """Requests with every kind of credential, good and bad."""
    northtel, regulator = keys["northtel"], keys["regulator"]
    forged = northtel[:-4] + "AAAA"
    TaxiiSession(url, northtel).post(f"/collections/{COMMUNITY}/objects/", envelope(indicator(1)),
                                     headers={"X-Request-ID": "ingest-1"})
    TaxiiSession(url, northtel, "northtel", scheme="basic").get(f"/collections/{COMMUNITY}/objects/")
    TaxiiSession(url, regulator, scheme="token").get("/collections/")
    TaxiiSession(url, forged).get("/collections/")
    TaxiiSession(url, forged, "northtel", scheme="basic").get("/collections/")
    requests.get(f"{url}/api/collections/", headers={"Accept": TAXII, "Authorization": "Basic " + base64.b64encode(
        f"regulator:{regulator}x".encode()).decode()})
    requests.get(f"{url}/healthz", headers={"X-Request-ID": northtel})


def test_serve_logs_one_json_object_a_line_and_never_a_key(tmp_path, deployment):
    config_path, settings, keys = deployment
    server = serve(tmp_path, config_path, "json")
    try:
        exercise(server.url, keys)
        # An error inside a request: the store loses a table under the running server.
        with sqlite3.connect(sqlite_path(settings.storage_url)) as db:
            db.execute("ALTER TABLE objects RENAME TO objects_gone")
        failed = TaxiiSession(server.url, keys["northtel"]).get(f"/collections/{COMMUNITY}/objects/",
                                                                headers={"X-Request-ID": "broken-1"})
        assert failed.status_code == 500
    finally:
        server.stop()

    text = server.log_path.read_text()
    lines = [json.loads(line) for line in text.splitlines()]  # every line is a JSON object
    # Leaving out the start-up check's bare GET /taxii2/; the /healthz probe is not logged at all.
    access = [line for line in lines if line["logger"] == "taxii_server.access" and line["path"] != "/taxii2/"]
    assert len(access) == 7
    assert all(REQUEST_FIELDS <= set(line) for line in access)
    ingest = next(line for line in access if line["request_id"] == "ingest-1")
    assert (ingest["operator"], ingest["key_id"], ingest["method"], ingest["status"], ingest["objects"],
            ingest["collection"]) == ("northtel", key_id(keys["northtel"]), "POST", 202, 1, COMMUNITY)
    refused = [line for line in access if line["status"] == 401]
    assert len(refused) == 3 and all(line["operator"] is None for line in refused)
    assert {line["key_id"] for line in refused} == {key_id(keys["northtel"]), None}  # None: not shaped as a key

    errors = [line for line in lines if line["request_id"] == "broken-1"]
    assert {line["logger"] for line in errors} == {"taxii_server.errors", "taxii_server.access"}
    assert all(line["level"] == "ERROR" for line in errors)
    assert "objects" in next(line for line in errors if line["logger"] == "taxii_server.errors")["exc_info"]

    for key in keys.values():
        assert secret_part(key) not in text and secret_part(key)[:-4] not in text
    assert settings.secret.decode() not in text


def test_serve_logs_text_lines_with_the_request_fields_and_never_a_key(tmp_path, deployment):
    config_path, settings, keys = deployment
    server = serve(tmp_path, config_path, "text")
    try:
        exercise(server.url, keys)
    finally:
        server.stop()
    text = server.log_path.read_text()
    ingest = next(line for line in text.splitlines() if "request_id=ingest-1" in line)
    assert f'"POST /api/collections/{COMMUNITY}/objects/" 202' in ingest
    assert f"operator=northtel key_id={key_id(keys['northtel'])}" in ingest and "objects=1" in ingest
    for key in keys.values():
        assert secret_part(key) not in text and secret_part(key)[:-4] not in text
