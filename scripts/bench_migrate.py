#!/usr/bin/env python3
"""Speed of `taxii-server migrate`: versions copied a second.

Loads N indicators (default 100,000) into a fresh SQLite store through the
storage interface, then copies that store with `copy_store`, as the migrate
command does, into a new SQLite store and, when `--to` names one, into that
URL (a MongoDB replica set, say). A second run into the same destination shows
the cost of an idempotent re-run, which copies nothing.

    .venv/bin/python scripts/bench_migrate.py [--objects 100000] [--to mongodb://HOST/DB?replicaSet=rs0]

No MongoDB figure comes from mongomock: it is an imitation, not a server.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from taxii_server.migrate import copy_store  # noqa: E402
from taxii_server.storage import open_store, redacted  # noqa: E402
from taxii_server.validation import check_object  # noqa: E402

COLLECTION = "2d0b7f4e-5c1a-4f7e-8a43-0d6f6b1e9c21"
LOAD_BATCH = 1000


def indicator(n: int) -> dict:
    return {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.UUID(int=n + 1, version=4)}",
            "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
            "name": f"bench indicator {n}", "pattern": f"[ipv4-addr:value = '10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}']",
            "pattern_type": "stix", "valid_from": "2026-01-01T00:00:00Z"}


def load(url: str, objects: int) -> None:
    store = open_store(url)
    for start in range(0, objects, LOAD_BATCH):
        store.add_versions(COLLECTION, [check_object(indicator(n)) for n in range(start, min(objects, start + LOAD_BATCH))])
    store.close()


def timed_copy(source_url: str, destination_url: str) -> tuple[float, int]:
    source, destination = open_store(source_url), open_store(destination_url)
    began = time.perf_counter()
    report = copy_store(source, destination)
    elapsed = time.perf_counter() - began
    source.close()
    destination.close()
    return elapsed, report.versions_copied


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--to", dest="extra_destination", help="also copy into this (empty) store URL")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        source = f"sqlite:///{Path(folder) / 'source.sqlite3'}"
        began = time.perf_counter()
        load(source, args.objects)
        print(f"loaded {args.objects:,} indicators into SQLite in {time.perf_counter() - began:.1f} s")
        destinations = [f"sqlite:///{Path(folder) / 'copy.sqlite3'}"]
        if args.extra_destination:
            destinations.append(args.extra_destination)
        for destination in destinations:
            for run in ("first run", "second run"):
                elapsed, copied = timed_copy(source, destination)
                print(f"sqlite -> {redacted(destination).split(':')[0]:8} {run}: {copied:,} copied in {elapsed:.2f} s "
                      f"({args.objects / elapsed:,.0f} versions/s read)")


if __name__ == "__main__":
    main()
