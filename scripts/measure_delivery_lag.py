#!/usr/bin/env python3
"""What the delivery-lag gauges cost a scrape, on a SQLite store of A advisories and
L licensees (docs/operations.md, "Delivery lag").

Most licensees were sent every advisory, the newest 1,000 of them still as page
records not yet compacted (as after a few minutes of heavy polling); a tenth were
sent the first 90 %; a tenth nothing. Times, median of N rounds: the two gauges
(`DeliveryLag.collect`), then again once every page is compacted, the store-size gauges
next to them, a whole /metrics answer,
and, once, the exact per-version count the licensees report makes (`store.undelivered`).

    .venv-test/bin/python scripts/measure_delivery_lag.py [--advisories 100000] [--licensees 50] [--rounds 20]
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from taxii_server.app import create_app  # noqa: E402
from taxii_server.compliance import scope  # noqa: E402
from taxii_server.compliance.metrics import DeliveryLag  # noqa: E402
from taxii_server.config import load_settings  # noqa: E402
from taxii_server.ops.metrics import StoreSize  # noqa: E402
from taxii_server.storage import open_store  # noqa: E402
from taxii_server.storage.base import DeliveredPage, Poll  # noqa: E402
from taxii_server.timestamps import now_micros  # noqa: E402
from taxii_server.validation import check_object  # noqa: E402

ADVISORIES = "886accab-6aad-41e0-b0f9-98a3056fa25d"
RECENT = 1000  # newest deliveries of an up-to-date licensee still held as pages
TOKEN = secrets.token_hex(24)


def deployment(folder: Path, licensees: int) -> Path:
    (folder / "metrics.token").write_text(TOKEN)
    config = {"title": "lag", "storage": "sqlite:///lag.sqlite3", "secret_file": "secret",
              "collections_dir": str(REPO / "collections"), "api_root": {"path": "api", "title": "lag"},
              "metrics": {"scrape_token_file": "metrics.token"},
              "operators": [{"id": "regulator", "role": "regulator"},
                            *({"id": f"licensee{n:03d}", "role": "licensee"} for n in range(licensees))]}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder / "config.yaml"


def advisory(n: int) -> dict:
    return {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.UUID(int=n + 1, version=4)}",
            "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z", "name": f"advisory {n}",
            "pattern": f"[ipv4-addr:value = '198.51.100.{n % 256}']", "pattern_type": "stix",
            "valid_from": "2026-01-01T00:00:00Z"}


def build(store, advisories: int, licensees: list[str]) -> list[int]:
    """Load the advisories and record what each licensee was sent; the date_added of each advisory."""
    for start in range(0, advisories, 1000):
        store.add_versions(ADVISORIES, [check_object(advisory(n)) for n in range(start, min(start + 1000, advisories))])
    versions = sorted((v.date_added, v.object_id, v.version) for v in store.recent_versions(
        ADVISORIES, advisories, with_body=False))
    now, tenth, recent = now_micros(), max(1, len(licensees) // 10), []
    for number, operator in enumerate(licensees):
        sent = 0 if number < tenth else len(versions) * 9 // 10 if number < 2 * tenth else len(versions)
        pages = [DeliveredPage(operator, ADVISORIES, now, tuple(versions[start:min(start + 100, sent)]))
                 for start in range(0, sent, 100)]
        held = RECENT // 100 if sent == len(versions) else 0
        store.record_deliveries(pages[:len(pages) - held], [Poll(operator, ADVISORIES, now)])
        while store.compact_deliveries(1000):
            pass
        recent += pages[len(pages) - held:]
    store.record_deliveries(recent, [])
    return [v[0] for v in versions]


def median_seconds(work, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--advisories", type=int, default=100_000)
    parser.add_argument("--licensees", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=20)
    arguments = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="taxii-delivery-lag-"))
    try:
        settings = load_settings(deployment(root, arguments.licensees), environ={})
        store = open_store(settings.storage_url)
        licensees = [op.id for op in scope.licensees(settings)]
        started = time.perf_counter()
        added = build(store, arguments.advisories, licensees)
        print(f"store: {arguments.advisories:,} advisories, {arguments.licensees} licensees, "
              f"{store.count_versions(ADVISORIES):,} versions; built in {time.perf_counter() - started:.0f} s")
        lag = DeliveryLag(settings, store)
        families = {f.name: {s.labels["licensee"]: s.value for s in f.samples} for f in lag.collect()}
        lags = families["taxii_delivery_lag_seconds"]
        tenth = max(1, len(licensees) // 10)
        print(f"lag: sent nothing {lags[licensees[0]]:.1f} s (oldest advisory added "
              f"{(now_micros() - added[0]) / 1e6:.1f} s ago); sent 90 % {lags[licensees[tenth]]:.1f} s (the next "
              f"advisory added {(now_micros() - added[len(added) * 9 // 10]) / 1e6:.1f} s ago); "
              f"{sum(lags[name] == 0 for name in licensees[2 * tenth:])} of {len(licensees) - 2 * tenth} others at 0")
        client = create_app(settings, store).test_client()
        scrape = {"headers": {"Authorization": f"Bearer {TOKEN}"}}
        assert client.get("/metrics", **scrape).status_code == 200
        rows = [
            ("delivery gauges (DeliveryLag.collect)", median_seconds(lambda: list(lag.collect()), arguments.rounds)),
            ("store gauges (StoreSize.collect)", median_seconds(
                lambda: list(StoreSize(store, settings.collections).collect()), arguments.rounds)),
            ("whole /metrics answer", median_seconds(lambda: client.get("/metrics", **scrape), arguments.rounds)),
            ("exact undelivered count (licensees report), once", median_seconds(
                lambda: store.undelivered(ADVISORIES, tuple(licensees), 0), 1)),
        ]
        while store.compact_deliveries(1000):
            pass
        rows.insert(1, ("delivery gauges, every page compacted", median_seconds(lambda: list(lag.collect()),
                                                                              arguments.rounds)))
        for label, seconds in rows:
            print(f"{label:55s} {seconds * 1000:10.1f} ms")
        store.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
