"""Concurrency over real HTTP (hardening issue, section 8).

Publishers and pollers run at once, each in its own process (multiprocessing,
spawn), against `taxii-server serve --workers 2` in a subprocess. Pollers follow
the TAXII polling pattern: GET objects with `added_after` set to the previous
response's X-TAXII-Date-Added-Last, following `next` while `more` is true. Every
poller must see every published object exactly once, and no request may fail.
The server process and the envelopes are those of the crash-safety test.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from collections import Counter
from itertools import islice
from pathlib import Path

import pytest
import requests

from backends import require_shared_store
from conftest import write_config
from taxii_server.config import load_settings
from taxii_server.keys import issue_key
from taxii_server.storage import open_store
from test_crash_safety import NEW_OBJECTS_PER_ENVELOPE, OBJECTS, TaxiiServerProcess, envelopes_of, session

# Every case runs once per storage backend that several processes can share.
pytestmark = pytest.mark.every_backend

PUBLISHERS = ("northtel", "southwave")
POLLERS = ("regulator", "northtel", "southwave")
ENVELOPES_PER_PUBLISHER = 30
# Smaller than the default page, so that polls regularly span several pages.
PAGE_SIZE = 20
POLL_INTERVAL = 0.01  # seconds between polls: pollers keep polling without starving the publishers of CPU
PROCESS_DEADLINE = 120  # seconds; only a hung process gets near it


# --- the processes (module level, so that spawned children can import them) ----------------------

def publish(url: str, key: str, publisher: int, with_new_versions: bool, start, result: str) -> None:
    """POST every envelope; record the (id, version) pairs acknowledged and any error."""
    http = session(key)
    published, errors = [], []
    start.wait(PROCESS_DEADLINE)
    for objects in islice(envelopes_of(publisher, with_new_versions), ENVELOPES_PER_PUBLISHER):
        try:
            answer = http.post(url + OBJECTS, data=json.dumps({"objects": objects}), timeout=30)
        except requests.RequestException as exc:
            errors.append(repr(exc))
            continue
        if answer.status_code != 202 or answer.json()["failure_count"]:
            errors.append(f"{answer.status_code} {answer.text}")
            continue
        published += [[entry["id"], entry["version"]] for entry in answer.json()["successes"]]
    Path(result).write_text(json.dumps({"published": published, "errors": errors}))


def poll(url: str, key: str, match_version: str | None, start, publishers_done, result: str) -> None:
    """Poll until the publishers are done, then drain once more. Records every
    (id, version) received, in order, and every error response."""
    http = session(key)
    received, errors = [], []
    filters = {"limit": str(PAGE_SIZE)}
    if match_version:
        filters["match[version]"] = match_version
    added_after = None

    def drain() -> int:
        """One poll: the first page after `added_after`, then `next` until `more` is false.
        Returns how many versions it received."""
        nonlocal added_after
        before = len(received)
        params = {**filters, **({"added_after": added_after} if added_after else {})}
        while True:
            try:
                answer = http.get(url + OBJECTS, params=params, timeout=30)
            except requests.RequestException as exc:
                errors.append(repr(exc))
                break
            if answer.status_code != 200:
                errors.append(f"{answer.status_code} {answer.text}")
                break
            page = answer.json()
            received.extend([item["id"], item["modified"]] for item in page.get("objects", []))
            if not page["more"]:
                added_after = answer.headers.get("X-TAXII-Date-Added-Last", added_after)
                break
            params = {**params, "next": page["next"]}
        return len(received) - before

    # Polls that brought something new: two or more show that polling overlapped publishing.
    polls_with_news = 0
    start.wait(PROCESS_DEADLINE)
    while not publishers_done.is_set():
        polls_with_news += drain() > 0
        time.sleep(POLL_INTERVAL)
    polls_with_news += drain() > 0  # every publisher has its answers, so everything is committed
    Path(result).write_text(json.dumps({"received": received, "errors": errors, "polls_with_news": polls_with_news}))


# --- the tests ------------------------------------------------------------------------------------

def run_exchange(tmp_path: Path, storage_url: str, match_version: str | None, with_new_versions: bool):
    """Start the server, run every publisher and poller process at once, and return
    (publisher results, poller results)."""
    config_path = write_config(tmp_path, storage=storage_url)
    settings = load_settings(config_path, environ={})
    store = open_store(settings.storage_url)
    keys = {operator: issue_key(store, settings.secret, operator).raw_key for operator in {*PUBLISHERS, *POLLERS}}
    store.close()

    spawn = multiprocessing.get_context("spawn")
    # Every process starts its requests once all of them are running.
    start, publishers_done = spawn.Barrier(len(PUBLISHERS) + len(POLLERS)), spawn.Event()
    server = TaxiiServerProcess(config_path, tmp_path / "serve.log")
    publishers, pollers = [], []
    server.start()
    try:
        publishers = [spawn.Process(target=publish, args=(server.url, keys[operator], n, with_new_versions, start,
                                                          str(tmp_path / f"publisher-{n}.json")))
                      for n, operator in enumerate(PUBLISHERS)]
        pollers = [spawn.Process(target=poll, args=(server.url, keys[operator], match_version, start,
                                                    publishers_done, str(tmp_path / f"poller-{n}.json")))
                   for n, operator in enumerate(POLLERS)]
        for process in publishers + pollers:
            process.start()
        join(publishers)
        publishers_done.set()
        join(pollers)
    finally:
        publishers_done.set()
        for process in publishers + pollers:
            if process.is_alive():
                process.kill()
        server.stop()

    def results(kind: str, count: int) -> list[dict]:
        return [json.loads((tmp_path / f"{kind}-{n}.json").read_text()) for n in range(count)]

    assert server.server_errors() == []
    return results("publisher", len(PUBLISHERS)), results("poller", len(POLLERS))


def join(processes) -> None:
    for process in processes:
        process.join(PROCESS_DEADLINE)
        assert not process.is_alive(), f"{process.name} did not finish"
        assert process.exitcode == 0, f"{process.name} failed with exit code {process.exitcode}"


@pytest.mark.parametrize("match_version, with_new_versions", [
    pytest.param(None, False, id="latest-versions"),
    pytest.param("all", True, id="match-version-all"),
])
def test_every_poller_sees_every_published_version_exactly_once(tmp_path, storage_url, match_version,
                                                                 with_new_versions):
    """added_after (§3.4), `next` (§3.5) and X-TAXII-Date-Added-Last (§3.2): two publishers POST while three
    pollers poll, all in separate processes against two gunicorn workers. Each poller
    receives exactly the published versions, each once: none missed between polls or
    pages, none repeated. With match[version]=all, publishers also add second versions."""
    require_shared_store(storage_url)
    publishers, pollers = run_exchange(tmp_path, storage_url, match_version, with_new_versions)

    for result in publishers:
        assert result["errors"] == []
    published = sorted(tuple(pair) for result in publishers for pair in result["published"])
    expected_per_publisher = ENVELOPES_PER_PUBLISHER * NEW_OBJECTS_PER_ENVELOPE + \
        (ENVELOPES_PER_PUBLISHER - 1 if with_new_versions else 0)
    assert len(published) == len(set(published)) == len(PUBLISHERS) * expected_per_publisher

    for result in pollers:
        assert result["errors"] == []
        received = Counter(tuple(pair) for pair in result["received"])
        assert sorted(set(published) - set(received)) == [], "the poller missed these"
        assert sorted(pair for pair, times in received.items() if times > 1) == [], "the poller got these twice"
        assert sorted(received.elements()) == published
        # New objects arrived in several polls, so the poller polled while publishing went on.
        assert result["polls_with_news"] > 1
