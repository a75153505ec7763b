"""Crash safety (hardening issue, section 7).

`taxii-server serve` runs as a real gunicorn subprocess and is killed with SIGKILL,
master and workers together, several times while writer threads publish to the
community collection; it is restarted after each kill. Afterwards the store must
open cleanly and hold every object a status resource acknowledged, each version
exactly once, whole, with consistent first/last flags, and no envelope half stored.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from conftest import COMMUNITY, TAXII, indicator, write_config, free_port
from taxii_server.config import load_settings
from taxii_server.keys import issue_key
from taxii_server.storage import open_store, sqlite_path
from taxii_server.storage.base import ObjectQuery, Store, StoredVersion, VersionFilter
from taxii_server.timestamps import parse_timestamp

EXECUTABLE = Path(sys.executable).with_name("taxii-server")
# Variables that would point the server somewhere else than the test deployment.
OVERRIDES = ("TAXII_STORAGE_URL", "TAXII_SERVER_SECRET", "TAXII_CONFIG")
OBJECTS = f"/api/collections/{COMMUNITY}/objects/"

WRITERS = 4
NEW_OBJECTS_PER_ENVELOPE = 3
# Seconds each server instance ingests before it is killed: varied, so kills land
# at different points of requests, transactions and worker start-up.
KILL_AFTER = (0.15, 0.9, 0.4, 1.2, 0.05, 0.6)
FIRST_VERSION = "2026-01-01T00:00:00.000Z"
SECOND_VERSION = "2026-02-01T00:00:00.000Z"


# --- the server as a process group ----------------------------------------------------------------

class TaxiiServerProcess:
    """`taxii-server serve` in a session of its own: gunicorn forks its workers into the
    same process group, so one killpg reaches the master and every worker."""

    def __init__(self, config_path: Path, log_path: Path, workers: int = 2, args: tuple[str, ...] = (),
                 environ: dict | None = None):
        self.config_path, self.log_path, self.workers = config_path, log_path, workers
        self.args, self.extra_environ = args, environ or {}
        self.process: subprocess.Popen | None = None
        self.url = ""

    def start(self) -> None:
        # Another program on this shared machine may take the port between free_port() and
        # gunicorn's bind; its answers would then pass for ours. Only our own "Listening at" counts.
        for _ in range(3):
            if self._start_on(free_port()):
                return
            self.kill()
        pytest.fail(f"taxii-server serve never listened on its own port:\n{self.log_path.read_text()}")

    def _start_on(self, port: int) -> bool:
        self.url = f"http://127.0.0.1:{port}"
        environ = {name: value for name, value in os.environ.items() if name not in OVERRIDES}
        logged_before = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(EXECUTABLE), "serve", "--config", str(self.config_path), "--port", str(port),
                 "--workers", str(self.workers), *self.args],
                stdout=log, stderr=subprocess.STDOUT, env={**environ, **self.extra_environ},
                start_new_session=True)
        self._wait_until_answering()
        with open(self.log_path, "rb") as log:
            log.seek(logged_before)
            return f"Listening at: {self.url} (".encode() in log.read()

    def kill(self) -> None:
        """SIGKILL to the whole group: no worker gets to finish a request or a transaction."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self._wait_until_group_is_gone(self.process.pid)

    def stop(self) -> None:
        """A graceful stop (SIGTERM); SIGKILL if gunicorn does not exit in time."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()

    def server_errors(self) -> list[str]:
        """Log lines of tracebacks and of requests answered with a 5xx status."""
        return [line for line in self.log_path.read_text().splitlines()
                if line.startswith("Traceback") or re.search(r'" 5[0-9][0-9] ', line)]

    def _wait_until_answering(self) -> None:
        """Poll until the server answers HTTP at all (401 counts), with a bounded number of tries."""
        for _ in range(400):
            if self.process.poll() is not None:
                pytest.fail(f"taxii-server serve exited with {self.process.returncode}:\n{self.log_path.read_text()}")
            try:
                requests.get(f"{self.url}/taxii2/", timeout=5)
                return
            except requests.ConnectionError:
                time.sleep(0.05)
        pytest.fail(f"taxii-server serve never answered on {self.url}:\n{self.log_path.read_text()}")

    @staticmethod
    def _wait_until_group_is_gone(group: int) -> None:
        """Orphaned workers are reaped by init; where nothing reaps them they stay as zombies,
        which hold no files or sockets, so only live members count."""
        for _ in range(200):
            if not _live_members(group):
                return
            time.sleep(0.05)
        pytest.fail(f"processes of the killed server survived SIGKILL: {_live_members(group)}")


def _live_members(group: int) -> list[int]:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return []
    proc = Path("/proc")
    if not proc.is_dir():
        return [group]
    members = []
    for stat in proc.glob("[0-9]*/stat"):
        try:
            # "pid (comm) state ppid pgrp ...": comm may hold spaces, so split after the last ")".
            state, _ppid, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError, ValueError):
            continue
        if int(pgrp) == group and state != "Z":
            members.append(int(stat.parent.name))
    return members


# --- writers --------------------------------------------------------------------------------------

@dataclass
class Attempt:
    """One POST of one envelope: the HTTP code and body of the answer, or None and the
    error when the kill cut the request."""

    objects: list[dict]
    key: str
    round: int
    answer: int | None = None
    body: str = ""
    error: str = ""

    @property
    def status(self) -> dict:
        return json.loads(self.body)


def envelopes_of(writer: int, with_new_versions: bool = True):
    """Endless envelopes of new indicators, each (with `with_new_versions`) also carrying the
    second version of an object first published in the envelope before it. Every
    (id, version) is sent in one envelope only, and no two writers share an object."""
    for sequence in itertools.count():
        base = (writer + 1) * 1_000_000 + sequence * NEW_OBJECTS_PER_ENVELOPE
        objects = [indicator(base + j, modified=FIRST_VERSION) for j in range(NEW_OBJECTS_PER_ENVELOPE)]
        if with_new_versions and sequence:
            objects.append(indicator(base - NEW_OBJECTS_PER_ENVELOPE, modified=SECOND_VERSION))
        yield objects


class Ingestion:
    """Writer threads publishing while `serving` is set; the main thread clears it just
    before each kill, so requests are cut mid-flight without a flood of refused connections."""

    def __init__(self, server: TaxiiServerProcess, keys: list[str]):
        self.server, self.keys = server, keys
        self.serving, self.finished = threading.Event(), threading.Event()
        self.round = 0
        self.attempts: list[Attempt] = []
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._write, args=(n,), daemon=True) for n in range(WRITERS)]

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info):
        self.finished.set()
        self.serving.set()  # release writers waiting for a server
        for thread in self._threads:
            thread.join(timeout=60)

    def _write(self, writer: int) -> None:
        key = self.keys[writer % len(self.keys)]
        http = session(key)
        for objects in envelopes_of(writer):
            self.serving.wait()
            if self.finished.is_set():
                return
            attempt = Attempt(objects, key, self.round)
            try:
                answer = http.post(self.server.url + OBJECTS, data=json.dumps({"objects": objects}), timeout=30)
            except requests.RequestException as exc:
                attempt.error = repr(exc)
                http.close()  # drop pooled connections to the killed server
            else:
                attempt.answer, attempt.body = answer.status_code, answer.text
            with self._lock:
                self.attempts.append(attempt)


def session(key: str) -> requests.Session:
    http = requests.Session()
    http.headers.update({"Accept": TAXII, "Content-Type": TAXII, "Authorization": f"Bearer {key}"})
    return http


def ingest_through_kills(server: TaxiiServerProcess, keys: list[str]) -> list[Attempt]:
    """Start the server, let the writers publish for a while, kill it; once per KILL_AFTER."""
    with Ingestion(server, keys) as ingestion:
        for round_number, pause in enumerate(KILL_AFTER):
            ingestion.round = round_number
            server.start()
            ingestion.serving.set()
            time.sleep(pause)
            ingestion.serving.clear()
            server.kill()
    return ingestion.attempts


# --- reading the store back -----------------------------------------------------------------------

def stored(store: Store, versions: VersionFilter) -> list[StoredVersion]:
    """Every version in the community collection matching `versions`, through the Store interface."""
    records, position = [], None
    while True:
        page = store.query(ObjectQuery(collection_id=COMMUNITY, limit=1000, versions=versions,
                                       after_position=position))
        records += page.records
        if not page.more:
            return records
        position = page.records[-1].date_added


def pairs(objects: list[dict]) -> set[tuple[str, str]]:
    return {(item["id"], item["modified"]) for item in objects}


def acknowledged(status: dict) -> set[tuple[str, str]]:
    """The (id, version) pairs a status resource lists as successes."""
    return {(entry["id"], entry["version"]) for entry in status.get("successes", [])}


def integrity_check(database: str) -> str:
    with sqlite3.connect(database) as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0]


def assert_store_is_consistent(store: Store, sent: dict[tuple[str, str], dict]) -> list[StoredVersion]:
    """No duplicates, no partly written objects, and first/last flags that agree with
    the versions stored. Returns every stored version."""
    everything = stored(store, VersionFilter.every())
    keys = [(record.object_id, record.version) for record in everything]
    assert len(keys) == len(set(keys)), "a version is stored twice"
    dates = [record.date_added for record in everything]
    assert len(dates) == len(set(dates)), "two versions share a date_added"
    assert dates == sorted(dates)
    for record in everything:
        assert json.loads(record.body) == sent[(record.object_id, record.version)]

    by_object: dict[str, list[int]] = {}
    for record in everything:
        by_object.setdefault(record.object_id, []).append(parse_timestamp(record.version))
    for name, flag, pick in (("last", VersionFilter(last=True), max), ("first", VersionFilter(first=True), min)):
        flagged = stored(store, flag)
        flagged_ids = [record.object_id for record in flagged]
        assert len(flagged_ids) == len(set(flagged_ids)), f"an object has two {name} versions"
        assert set(flagged_ids) == set(by_object), f"an object has no {name} version"
        for record in flagged:
            assert parse_timestamp(record.version) == pick(by_object[record.object_id])
    return everything


def all_versions_over_http(http: requests.Session, url: str) -> dict[tuple[str, str], dict]:
    """Every version in the collection, paging with `next` at the largest page size."""
    found: dict[tuple[str, str], dict] = {}
    params = {"match[version]": "all", "limit": "200"}
    while True:
        answer = http.get(url + OBJECTS, params=params, timeout=30)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        for item in page.get("objects", []):
            assert (item["id"], item["modified"]) not in found
            found[(item["id"], item["modified"])] = item
        if not page["more"]:
            return found
        params = {**params, "next": page["next"]}


# --- the test -------------------------------------------------------------------------------------

def test_acknowledged_objects_survive_repeated_sigkill_during_concurrent_ingestion(tmp_path):
    """Kill -9 the server (master and workers) again and again while four writers publish;
    restart it each time. Nothing acknowledged is lost, nothing is stored twice or in part,
    the SQLite file passes its integrity check, and requests the kill cut can be sent again."""
    config_path = write_config(tmp_path)
    settings = load_settings(config_path, environ={})
    database = sqlite_path(settings.storage_url)
    store = open_store(settings.storage_url)
    keys = [issue_key(store, settings.secret, operator).raw_key for operator in ("northtel", "southwave", "regulator")]
    store.close()
    server = TaxiiServerProcess(config_path, tmp_path / "serve.log")

    try:
        attempts = ingest_through_kills(server, keys)

        # Straight after the last kill, before any restart: the file is sound and every
        # envelope was stored whole or not at all (add_versions is one transaction).
        sent = {(item["id"], item["modified"]): item for attempt in attempts for item in attempt.objects}
        store = open_store(settings.storage_url)
        assert integrity_check(database) == "ok"
        everything = assert_store_is_consistent(store, sent)
        present = {(record.object_id, record.version) for record in everything}
        for attempt in attempts:
            assert pairs(attempt.objects) <= present or not pairs(attempt.objects) & present, \
                f"an envelope was stored in part: {sorted(pairs(attempt.objects) - present)} missing"

        # Every answer the server gave is a complete status, and no acknowledged object is lost.
        answered = [attempt for attempt in attempts if attempt.answer is not None]
        cut = [attempt for attempt in attempts if attempt.answer is None]
        assert answered, "no envelope was ever acknowledged"
        assert {attempt.round for attempt in cut} == set(range(len(KILL_AFTER))), \
            "some kill cut no request: it did not land during ingestion"
        assert not [(attempt.answer, attempt.body) for attempt in answered if attempt.answer != 202]
        for attempt in answered:
            assert attempt.status["status"] == "complete" and attempt.status["failure_count"] == 0
            assert acknowledged(attempt.status) == pairs(attempt.objects)
            assert acknowledged(attempt.status) <= present, "an acknowledged object was lost"

        # After a restart, envelopes the kill cut are sent again: each is a success,
        # stored now or already stored by the request that was cut.
        server.start()
        http = {key: session(key) for key in keys}
        for attempt in cut:
            answer = http[attempt.key].post(server.url + OBJECTS, data=json.dumps({"objects": attempt.objects}),
                                            timeout=30)
            assert answer.status_code == 202
            status = answer.json()
            assert status["failure_count"] == 0 and acknowledged(status) == pairs(attempt.objects)
            for entry in status["successes"]:
                was_stored = (entry["id"], entry["version"]) in present
                assert entry.get("message") == ("already stored (exact duplicate)" if was_stored else None)

        # Every status resource the writers received is still there, unchanged, for its owner.
        for attempt in answered:
            answer = http[attempt.key].get(f"{server.url}/api/status/{attempt.status['id']}/", timeout=30)
            assert answer.status_code == 200 and answer.json() == attempt.status

        # Now everything sent is stored exactly once, over HTTP and in the store.
        assert all_versions_over_http(http[keys[0]], server.url) == sent
        assert {(record.object_id, record.version) for record in assert_store_is_consistent(store, sent)} == set(sent)
        store.close()
    finally:
        server.stop()

    assert integrity_check(database) == "ok"
    assert server.server_errors() == []

