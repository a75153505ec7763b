#!/usr/bin/env python3
"""Benchmark of the firewall feeds: a large ipv4.txt from collections of different sizes.

For each collection size it loads that many objects into the advisories
collection of a fresh SQLite deployment (directly through the Store interface,
as scripts/bench does): `--feed` indicators with a plain IPv4 pattern spread
evenly through the collection; of the rest, one in three an indicator with a plain
domain, URL or SHA-256 pattern (other feeds), the others notes about indicators. It then builds the feed entries once (what `taxii-server feeds refresh`
does), starts `taxii-server serve` on loopback and, from this process over HTTP
with HTTP Basic as a firewall sends it, measures:

- full responses of ipv4.txt: median latency and responses per second, one client
  after another and with 4 clients at once; the same with gzip and with ?limit=50000;
- the time to a 304 (If-None-Match with the ETag just served);
- after 1,000 new indicators are stored, the first request (it reads only those).

With --store-304 it instead times, in this process and without HTTP, the store calls
a 304 makes, at each size.

The same feed from collections of different sizes, side by side in one run, shows
whether the cost follows the feed or the collection.

    .venv-test/bin/python scripts/bench_feeds.py                       # 200,000 and 1,000,000 objects
    .venv-test/bin/python scripts/bench_feeds.py --sizes 20000,100000 --feed 15000   # a quick look
    .venv-test/bin/python scripts/bench_feeds.py --store-304 --sizes 100000,600000 --feed 20000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import requests
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from taxii_server.config import load_settings  # noqa: E402
from taxii_server.feeds.index import FeedIndex  # noqa: E402
from taxii_server.feeds.safety import SafetyRules  # noqa: E402
from taxii_server.keys import issue_key  # noqa: E402
from taxii_server.storage import open_store  # noqa: E402
from taxii_server.storage.base import NewVersion  # noqa: E402
from taxii_server.timestamps import parse_timestamp  # noqa: E402
from taxii_server.validation import check_object  # noqa: E402

STAMP = "2026-01-01T00:00:00.000Z"
LOAD_BATCH = 20_000


def log(message: str) -> None:
    print(f"[bench_feeds {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def stix_object(n: int, ipv4: bool) -> dict:
    """Object n: an indicator with a plain IPv4 pattern (public addresses from 11.0.0.0 on); else, one time
    in three, an indicator of another feed (domain, URL, SHA-256), and otherwise a note about an indicator."""
    if not ipv4 and n % 3:
        return {"type": "note", "spec_version": "2.1", "id": f"note--00000000-0000-4000-8000-{n:012x}",
                "created": STAMP, "modified": STAMP, "content": f"Seen again at a licensee ({n}).",
                "object_refs": [f"indicator--00000000-0000-4000-8000-{n - 1:012x}"]}
    if ipv4:
        pattern = f"[ipv4-addr:value = '{11 + (n >> 16)}.{n >> 8 & 255}.{n & 255}.{(n * 7) & 255}']"
    else:
        pattern = (f"[domain-name:value = 'login-{n}.bench.zz']", f"[url:value = 'http://dl-{n}.bench.zz/x.bin']",
                   f"[file:hashes.'SHA-256' = '{n:064x}']")[n % 9 // 3]
    return {"type": "indicator", "spec_version": "2.1", "id": f"indicator--00000000-0000-4000-8000-{n:012x}",
            "created": STAMP, "modified": STAMP, "name": f"benchmark indicator {n}",
            "indicator_types": ["malicious-activity"], "confidence": n % 101, "pattern": pattern,
            "pattern_type": "stix", "valid_from": STAMP}


def new_version(item: dict) -> NewVersion:
    body = orjson.dumps(item, option=orjson.OPT_SORT_KEYS)
    return NewVersion(object_id=item["id"], type=item["type"], version=STAMP, version_key=parse_timestamp(STAMP),
                      spec_version="2.1", content_hash=hashlib.sha256(body).digest(), body=body)


def check_prebuilt_objects() -> None:
    """The fast loader must store exactly what POST would: compare a sample of every shape with validation."""
    for n, ipv4 in [(0, True), *((n, False) for n in range(1, 10))]:
        item = stix_object(n, ipv4)
        if check_object(item) != new_version(item):
            raise SystemExit(f"pre-built object {n} differs from what check_object stores")


def spread(total: int, feed: int):
    """(n, is_ipv4) for objects 0..total-1, `feed` of them IPv4, evenly spread."""
    for n in range(total):
        yield n, (n * feed) // total != ((n + 1) * feed) // total


def load(store, collection_id: str, items) -> None:
    batch = []
    for n, ipv4 in items:
        batch.append(new_version(stix_object(n, ipv4)))
        if len(batch) == LOAD_BATCH:
            store.add_versions(collection_id, batch)
            batch = []
    if batch:
        store.add_versions(collection_id, batch)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def timed(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 2)


def measure(size: int, feed: int, requests_n: int, conditional_n: int, folder: Path) -> dict:
    folder.mkdir(parents=True)
    config = {"title": "feeds benchmark", "storage": "sqlite:///taxii.sqlite3", "secret_file": "server.secret",
              "collections_dir": str(REPO / "collections"), "api_root": {"path": "api", "title": "bench"},
              "operators": [{"id": "regulator", "role": "regulator"}, {"id": "northtel", "role": "licensee"}]}
    config_path = folder / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    settings = load_settings(config_path, environ={})
    collection_id = settings.collection("advisories").id
    store = open_store(settings.storage_url)
    key = issue_key(store, settings.secret, "northtel").raw_key

    log(f"{size:,} objects: loading")
    load_seconds = timed(lambda: load(store, collection_id, spread(size, feed)))
    log(f"{size:,} objects: loaded in {load_seconds:.1f} s; building the feed entries")
    build_seconds = timed(lambda: FeedIndex(store, settings.feed_rules).refresh(collection_id))
    log(f"{size:,} objects: feed entries built in {build_seconds:.1f} s")

    port = free_port()
    server = subprocess.Popen([str(Path(sys.executable).parent / "taxii-server"), "serve", "--config", str(config_path),
                               "--port", str(port), "--workers", "2", "--threads", "4"],
                              stdout=open(folder / "server.log", "wb"), stderr=subprocess.STDOUT, cwd=folder)
    url = f"http://127.0.0.1:{port}/feeds/advisories/ipv4.txt"
    http = requests.Session()
    http.auth = ("northtel", key)
    try:
        for _ in range(300):
            try:
                if http.get(url, params={"limit": 1}).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        full = http.get(url)
        lines = [line for line in full.text.splitlines() if not line.startswith("#")]
        assert full.status_code == 200 and len(lines) == feed, (full.status_code, len(lines))
        assert len(set(lines)) == feed
        etag = full.headers["ETag"]

        def get(**kwargs):
            response = http.get(url, **kwargs)
            response.raise_for_status()
            return response

        for _ in range(2):
            get()  # warm-up
        sequential = [timed(get) for _ in range(requests_n)]
        with ThreadPoolExecutor(4) as pool:
            started = time.perf_counter()
            list(pool.map(lambda _: get(), range(requests_n * 2)))
            parallel_rps = requests_n * 2 / (time.perf_counter() - started)
        gzipped = [timed(lambda: get(headers={"Accept-Encoding": "gzip"})) for _ in range(requests_n)]
        gzip_bytes = len(http.get(url, headers={"Accept-Encoding": "gzip"}, stream=True).raw.read())
        limited = [timed(lambda: get(params={"limit": 50_000})) for _ in range(requests_n)]
        not_modified = []
        for _ in range(conditional_n):
            started = time.perf_counter()
            response = http.get(url, headers={"If-None-Match": etag})
            not_modified.append(time.perf_counter() - started)
            assert response.status_code == 304, response.status_code
        load(store, collection_id, ((n, True) for n in range(10_000_000, 10_001_000)))  # 1,000 new IPv4 indicators
        after_new = timed(get)
        return {
            "objects": size, "feed_entries": feed, "bytes": len(full.content), "gzip_bytes": gzip_bytes,
            "load_seconds": round(load_seconds, 1), "build_seconds": round(build_seconds, 1),
            "full_median_ms": median_ms(sequential), "full_per_second": round(1 / statistics.mean(sequential), 2),
            "full_per_second_4_clients": round(parallel_rps, 2),
            "gzip_median_ms": median_ms(gzipped), "limit_50000_median_ms": median_ms(limited),
            "not_modified_median_ms": median_ms(not_modified),
            "not_modified_p95_ms": round(sorted(not_modified)[int(len(not_modified) * 0.95) - 1] * 1000, 2),
            "after_1000_new_ms": round(after_new * 1000, 1),
        }
    finally:
        server.terminate()
        server.wait(timeout=30)
        store.close()


def measure_store_304(size: int, feed: int, folder: Path, repeats: int = 2000) -> dict:
    """In this process, no HTTP: the store calls a 304 makes (a refresh with nothing new, the latest
    start or end of validity), timed `repeats` times on a collection of `size` objects."""
    folder.mkdir(parents=True)
    store = open_store(f"sqlite:///{folder / 'taxii.sqlite3'}")
    try:
        load(store, "collection", spread(size, feed))
        index = FeedIndex(store, SafetyRules.build())
        index.refresh("collection")
        samples = [timed(lambda: (index.refresh("collection"),
                                  store.feed_last_boundary("collection", "ipv4", index.now()))) for _ in range(repeats)]
    finally:
        store.close()
    samples.sort()
    return {"objects": size, "feed_entries": feed, "median_us": round(statistics.median(samples) * 1e6, 1),
            "p95_us": round(samples[int(repeats * 0.95)] * 1e6, 1)}


def markdown(results: list[dict], command: str) -> str:
    rows = [
        ("objects in the collection", "objects", "{:,}"), ("entries in ipv4.txt", "feed_entries", "{:,}"),
        ("ipv4.txt size, bytes (gzip)", None, None),
        ("loading the objects (store interface), s", "load_seconds", "{}"),
        ("building the feed entries once, s", "build_seconds", "{}"),
        ("full ipv4.txt, median ms", "full_median_ms", "{}"),
        ("full ipv4.txt per second, 1 client", "full_per_second", "{}"),
        ("full ipv4.txt per second, 4 clients", "full_per_second_4_clients", "{}"),
        ("full ipv4.txt with gzip, median ms", "gzip_median_ms", "{}"),
        ("ipv4.txt?limit=50000, median ms", "limit_50000_median_ms", "{}"),
        ("304 (If-None-Match), median ms", "not_modified_median_ms", "{}"),
        ("304 (If-None-Match), p95 ms", "not_modified_p95_ms", "{}"),
        ("first request after 1,000 new indicators, ms", "after_1000_new_ms", "{}"),
    ]
    header = "| | " + " | ".join(f"{r['objects']:,} objects" for r in results) + " |"
    lines = [header, "|---|" + "---|" * len(results)]
    for label, key, form in rows:
        if key is None:
            cells = [f"{r['bytes']:,} ({r['gzip_bytes']:,})" for r in results]
        else:
            cells = [form.format(r[key]) for r in results]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if len(results) >= 2:
        first, last = results[0], results[-1]
        lines.append("")
        lines.append(f"Ratio {last['objects']:,} / {first['objects']:,} objects, same feed: full response "
                     f"{last['full_median_ms'] / first['full_median_ms']:.2f}x, 304 "
                     f"{last['not_modified_median_ms'] / first['not_modified_median_ms']:.2f}x.")
    return "\n".join([f"Command: `{command}`", "", *lines])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200000,1000000", help="collection sizes, comma-separated")
    parser.add_argument("--feed", type=int, default=150_000, help="IPv4 indicators in each collection")
    parser.add_argument("--requests", type=int, default=20, help="full responses timed per case")
    parser.add_argument("--conditional", type=int, default=200, help="304 responses timed")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--store-304", action="store_true",
                        help="only time, in this process, the store calls of a 304 at each size")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    check_prebuilt_objects()
    if args.store_304:
        with tempfile.TemporaryDirectory(prefix="bench-feeds-") as scratch:
            for size in sizes:
                print(json.dumps(measure_store_304(size, args.feed, Path(scratch) / str(size))), flush=True)
        return
    with tempfile.TemporaryDirectory(prefix="bench-feeds-") as scratch:
        results = [measure(size, args.feed, args.requests, args.conditional, Path(scratch) / str(size))
                   for size in sizes]
    command = "scripts/bench_feeds.py " + " ".join(sys.argv[1:])
    print(markdown(results, command.strip()))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
