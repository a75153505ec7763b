#!/usr/bin/env python3
"""Latency of one 100-object page of GET objects, over real HTTP.

Loads N indicators (default 10,000) into a fresh SQLite store, starts
`taxii-server serve` (gunicorn, one worker) on loopback, and times GET
objects pages from this separate process: the first page, a page in the
middle reached with `added_after`, and a page reached with `next`.

    .venv/bin/python scripts/bench_page_latency.py [--objects 10000] [--requests 200]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from taxii_server.config import load_settings  # noqa: E402
from taxii_server.keys import issue_key  # noqa: E402
from taxii_server.storage import open_store  # noqa: E402
from taxii_server.validation import check_object  # noqa: E402

TAXII = "application/taxii+json;version=2.1"


def indicator(n: int) -> dict:
    return {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.UUID(int=n + 1, version=4)}",
            "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
            "name": f"bench {n}", "pattern": f"[ipv4-addr:value = '10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}']",
            "pattern_type": "stix", "valid_from": "2026-01-01T00:00:00Z"}


def prepare(folder: Path, count: int) -> tuple[Path, str, str]:
    config = {"title": "bench", "storage": "sqlite:///bench.sqlite3", "secret_file": "secret",
              "collections_dir": str(REPO / "collections"),
              "api_root": {"path": "api", "title": "bench"},
              "paging": {"default_limit": 100, "max_limit": 1000},
              "operators": [{"id": "regulator", "role": "regulator"}, {"id": "northtel", "role": "licensee"}]}
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    settings = load_settings(path, environ={})
    store = open_store(settings.storage_url)
    collection = settings.collection("advisories").id
    started = time.perf_counter()
    for start in range(0, count, 1000):
        store.add_versions(collection, [check_object(indicator(n)) for n in range(start, min(start + 1000, count))])
    print(f"loaded {count} validated indicators in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    key = issue_key(store, settings.secret, "northtel").raw_key
    store.close()
    return path, key, collection


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, session: requests.Session, timeout: float = 1) -> None:
    for _ in range(100):
        try:
            session.get(url, timeout=timeout)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise SystemExit("server did not start")


def timed(session: requests.Session, url: str, params: dict, runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        response = session.get(url, params=params)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200 and len(response.json()["objects"]) == 100, response.text[:200]
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="taxii-bench-"))
    server = None
    try:
        config, key, collection = prepare(folder, args.objects)
        port = free_port()
        executable = Path(sys.executable).with_name("taxii-server")
        server = subprocess.Popen([str(executable), "serve", "--config", str(config), "--port", str(port),
                                   "--workers", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        session = requests.Session()
        session.headers.update({"Accept": TAXII, "Authorization": f"Bearer {key}"})
        base = f"http://127.0.0.1:{port}/api/collections/{collection}/objects/"
        wait_until_up(base, session)

        middle = session.get(base, params={"limit": 1000}).headers["X-TAXII-Date-Added-Last"]
        token = session.get(base, params={"limit": 100}).json()["next"]
        cases = {
            "first page (limit=100)": {"limit": 100},
            "page after added_after (middle)": {"limit": 100, "added_after": middle},
            "page reached with next": {"limit": 100, "next": token},
        }
        timed(session, base, {"limit": 100}, 20)  # warm-up
        print(f"GET objects, {args.objects} stored indicators, {args.requests} requests each, "
              f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
        print(f"{'case':<34}{'median ms':>10}{'p95 ms':>10}")
        for name, params in cases.items():
            samples = sorted(timed(session, base, params, args.requests))
            p95 = samples[int(len(samples) * 0.95) - 1]
            print(f"{name:<34}{statistics.median(samples):>10.2f}{p95:>10.2f}")
    finally:
        if server:
            server.terminate()
            server.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
