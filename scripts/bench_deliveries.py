#!/usr/bin/env python3
"""What compliance records cost: page throughput with and without delivery
tracking, and how long the reports take at scale.

1. Throughput, side by side. Two copies of one SQLite store holding N
   validated advisories, each served by `taxii-server serve` (one gunicorn
   worker) on loopback: one with `track_deliveries: true` on advisories, one
   without. L licensees each page through the whole collection (limit 100,
   following `next`), so every page delivers versions that licensee has never
   been sent; page i goes to one server, then to the other, so both see the
   same load at the same moment. Prints pages a second for each and the ratio.

2. Scale. A store with A advisories and D licensees, each sent every advisory
   (the deliveries spread over 90 days, recorded as pages of 100 as the
   servers record them, then compacted), 1,000 acknowledgements and 200
   sightings per licensee; then times each report, a day's purge, and the size
   of the database before and after.

    .venv-test/bin/python scripts/bench_deliveries.py [--objects 10000] [--licensees 20]
        [--scale-advisories 100000] [--scale-licensees 50] [--skip-scale] [--skip-throughput]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sqlite3
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

from taxii_server.compliance import reports  # noqa: E402
from taxii_server.compliance.service import ComplianceService  # noqa: E402
from taxii_server.config import load_settings  # noqa: E402
from taxii_server.keys import issue_key  # noqa: E402
from taxii_server.storage import open_store  # noqa: E402
from taxii_server.storage.base import Acknowledgement, DeliveredPage, Poll, SightingRecord  # noqa: E402
from taxii_server.timestamps import now_micros  # noqa: E402
from taxii_server.validation import check_object  # noqa: E402

TAXII = "application/taxii+json;version=2.1"
ADVISORIES = "886accab-6aad-41e0-b0f9-98a3056fa25d"
DAY = 86_400_000_000
sys.path.insert(0, str(REPO / "scripts"))
from bench_page_latency import free_port, indicator, wait_until_up  # noqa: E402


def write_deployment(folder: Path, licensees: int, tracked: bool) -> Path:
    """config.yaml and a collections/ folder whose advisories track deliveries, or not."""
    collections = folder / "collections"
    shutil.copytree(REPO / "collections", collections)
    for declaration in collections.glob("*.yaml"):
        text = declaration.read_text().replace("track_deliveries: true", f"track_deliveries: {str(tracked).lower()}")
        declaration.write_text(text)
    config = {"title": "bench", "storage": "sqlite:///bench.sqlite3", "secret_file": "secret",
              "collections_dir": "collections", "api_root": {"path": "api", "title": "bench"},
              "paging": {"default_limit": 100, "max_limit": 1000},
              "operators": [{"id": "regulator", "role": "regulator"},
                            *({"id": f"licensee{n:03d}", "role": "licensee"} for n in range(licensees))]}
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def load_advisories(store, count: int) -> None:
    started = time.perf_counter()
    for start in range(0, count, 1000):
        store.add_versions(ADVISORIES, [check_object(indicator(n)) for n in range(start, min(start + 1000, count))])
    print(f"  loaded {count} validated advisories in {time.perf_counter() - started:.1f} s", file=sys.stderr)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its descendants (gunicorn's workers), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


# --- 1. throughput --------------------------------------------------------------------------------

def throughput(objects: int, licensees: int) -> dict:
    root = Path(tempfile.mkdtemp(prefix="taxii-bench-deliveries-"))
    servers = []
    try:
        configs = {name: write_deployment(root / name, licensees, tracked=name == "tracked")
                   for name in ("tracked", "untracked")}
        settings = load_settings(configs["tracked"], environ={})
        store = open_store(settings.storage_url)
        load_advisories(store, objects)
        store.close()
        shutil.copy(root / "tracked" / "bench.sqlite3", root / "untracked" / "bench.sqlite3")
        shutil.copy(root / "tracked" / "secret", root / "untracked" / "secret")
        keys = {}
        for name, config in configs.items():
            store = open_store(load_settings(config, environ={}).storage_url)
            keys[name] = [issue_key(store, settings.secret, f"licensee{n:03d}").raw_key for n in range(licensees)]
            store.close()
        urls = {}
        for name, config in configs.items():
            port = free_port()
            servers.append(subprocess.Popen([str(Path(sys.executable).with_name("taxii-server")), "serve", "--config",
                                             str(config), "--port", str(port), "--workers", "1"],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            urls[name] = f"http://127.0.0.1:{port}/api/collections/{ADVISORIES}/objects/"
        sessions = {name: requests.Session() for name in configs}
        for name, session in sessions.items():
            session.headers["Accept"] = TAXII
            wait_until_up(urls[name], session, timeout=10)  # a loaded machine may answer slowly
        elapsed = {name: 0.0 for name in configs}
        cpu_before = {name: cpu_seconds(server.pid) for name, server in zip(configs, servers)}
        pages = 0
        for licensee in range(licensees):
            cursors = {name: {"limit": "100"} for name in configs}
            while any(cursors.values()):
                order = list(configs) if pages % 2 else list(reversed(configs))  # neither always goes first
                for name in order:
                    params = cursors[name]
                    if params is None:
                        continue
                    started = time.perf_counter()
                    answer = sessions[name].get(urls[name], params=params,
                                                headers={"Authorization": f"Bearer {keys[name][licensee]}"})
                    elapsed[name] += time.perf_counter() - started
                    body = answer.json()
                    assert answer.status_code == 200 and len(body["objects"]) <= 100, answer.text[:200]
                    cursors[name] = {"limit": "100", "next": body["next"]} if body["more"] else None
                pages += 1
        time.sleep(1.5)  # let the tracked server's buffer reach the store
        cpu = {name: cpu_seconds(server.pid) - cpu_before[name] for name, server in zip(configs, servers)}
        store = open_store(load_settings(configs["tracked"], environ={}).storage_url)
        started = time.perf_counter()
        while store.compact_deliveries(1000):
            pass
        compaction = time.perf_counter() - started
        recorded = len(store.deliveries(None, None, None, None, 10 ** 9))
        store.close()
        rate = {name: pages / seconds for name, seconds in elapsed.items()}
        return {"objects": objects, "licensees": licensees, "pages_each": pages, "recorded": recorded,
                "compaction_seconds": compaction, "cpu_ms_per_page": {name: cpu[name] * 1000 / pages for name in cpu},
                "cpu_overhead": cpu["tracked"] / cpu["untracked"] - 1,
                "pages_per_second": rate, "overhead": 1 - rate["tracked"] / rate["untracked"]}
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


# --- 2. scale ----------------------------------------------------------------------------------------

def timed(label: str, work) -> tuple[str, float, object]:
    started = time.perf_counter()
    result = work()
    return label, time.perf_counter() - started, result


def drain(fetch) -> int:
    """Every page of a paged report; how many rows."""
    rows, after = 0, None
    while True:
        page, after = fetch(after)
        rows += len(page)
        if after is None:
            return rows


def scale(advisories: int, licensees: int) -> dict:
    root = Path(tempfile.mkdtemp(prefix="taxii-bench-compliance-scale-"))
    try:
        settings = load_settings(write_deployment(root, licensees, tracked=True), environ={})
        store = open_store(settings.storage_url)
        load_advisories(store, advisories)
        database = Path(settings.storage_url[len("sqlite:///"):])
        size_before = database.stat().st_size
        now = now_micros()
        stored = _stored_versions(store)
        started = time.perf_counter()
        for number in range(licensees):  # as the read path records them: one record per page of 100
            operator = f"licensee{number:03d}"
            pages = [DeliveredPage(operator, ADVISORIES, now - (advisories - start) * 90 * DAY // advisories,
                                   tuple((v.date_added, v.object_id, v.version) for v in stored[start:start + 100]))
                     for start in range(0, advisories, 100)]
            for start in range(0, len(pages), 100):
                store.record_deliveries(pages[start:start + 100], [Poll(operator, ADVISORIES, now)])
        record_seconds = time.perf_counter() - started
        started = time.perf_counter()
        while store.compact_deliveries(1000):
            pass
        write_seconds = time.perf_counter() - started
        size_deliveries = _checkpointed_size(database)
        table_bytes = _table_size(database, "compliance_deliveries")
        for number in range(licensees):
            operator = f"licensee{number:03d}"
            for index in range(0, min(1000, advisories)):
                object_id = stored[index * max(1, advisories // 1000)].object_id
                at = now - DAY // 2
                store.save_acknowledgement(Acknowledgement(operator, object_id, f"opinion--{uuid.uuid4()}", "v",
                                                           ADVISORIES, at, "agree", "acknowledged", True))
                store.mark_acknowledged(operator, object_id, (ADVISORIES,), at)
            for index in range(200):
                store.save_sighting(SightingRecord(operator, f"sighting--{uuid.uuid4()}", "v", 1, stored[index].object_id, 2,
                                                   now - DAY, now, now))
        size_after = _checkpointed_size(database)
        service = ComplianceService(settings, store)
        service.catch_up()  # the first purge check happens here, not inside a timed report
        rows = [
            timed("report licensees", lambda: len(reports.licensee_rows(service))),
            timed("report sightings", lambda: len(reports.sighting_rows(service))),
            timed("delivery summary (every advisory)", lambda: drain(
                lambda after: reports.delivery_summary(service, None, None, after, 2 ** 62))),
            timed("delivery rows --since 1d", lambda: drain(
                lambda after: reports.delivery_rows(service, None, now - DAY, after, 5000))),
            timed("delivery rows, every row", lambda: drain(
                lambda after: reports.delivery_rows(service, None, None, after, 5000))),
            timed("purge one day of deliveries", lambda: store.purge_compliance(now - 89 * DAY)),
        ]
        store.close()
        return {"advisories": advisories, "licensees": licensees, "deliveries": advisories * licensees,
                "record_seconds": record_seconds, "write_seconds": write_seconds, "size_before": size_before, "size_deliveries": size_deliveries, "table_bytes": table_bytes,
                "size_after": size_after,
                "reports": rows}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _stored_versions(store) -> list:
    """Every advisory version, in date_added order."""
    versions, position = [], None
    while True:
        page = store.export_versions(ADVISORIES, position, 10_000)
        if not page:
            return versions
        versions += page
        position = page[-1].date_added


def _table_size(database: Path, table: str) -> int:
    """Bytes of the pages holding one table (SQLite's dbstat)."""
    with sqlite3.connect(database) as db:
        return db.execute("SELECT SUM(pgsize) FROM dbstat WHERE name = ?", (table,)).fetchone()[0]


def _checkpointed_size(database: Path) -> int:
    """The database file's size once its write-ahead log is folded in."""
    with sqlite3.connect(database) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return database.stat().st_size


def render_section(throughput_result: dict | None, scale_result: dict | None, command: str) -> str:
    """The "Compliance records" section of docs/benchmarks.md."""
    lines = ["<!-- bench_deliveries: begin -->", "## Compliance records", "",
             f"Written by `{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
             f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}, load average "
             f"(1 minute) {os.getloadavg()[0]:.1f} at the end; the machine is shared, so figures vary between runs.", ""]
    if throughput_result:
        r = throughput_result
        rate = r["pages_per_second"]
        lines += [
            "### Page throughput with and without delivery tracking", "",
            f"Two `taxii-server serve --workers 1` on copies of one store of {r['objects']:,} advisories, one with "
            f"`track_deliveries: true` on advisories, one without; {r['licensees']} licensees each page through all "
            f"of them (limit 100, following `next`), page by page on each server, in turn first ({r['pages_each']:,} "
            "pages each). Every page delivers 100 versions its licensee was never sent: the most a page can record.",
            "", "| server | pages/s |", "|---|---:|",
            f"| without tracking | {rate['untracked']:.1f} |", f"| with tracking | {rate['tracked']:.1f} |",
            f"| overhead | {r['overhead'] * 100:.1f} % |", "",
            f"CPU time of each server (gunicorn master and worker, from /proc) per page, which the machine's other "
            f"load does not skew as much: {r['cpu_ms_per_page']['untracked']:.2f} ms without tracking, "
            f"{r['cpu_ms_per_page']['tracked']:.2f} ms with ({r['cpu_overhead'] * 100:+.1f} %).", "",
            f"Off the read path, the {r['recorded']:,} deliveries recorded as pages were compacted into one record each "
            f"in {r['compaction_seconds']:.2f} s ({r['recorded'] / r['compaction_seconds']:,.0f} a second).", ""]
    if scale_result:
        r = scale_result
        lines += [
            f"### Reports over {r['licensees']} licensees x {r['advisories']:,} advisories", "",
            f"{r['deliveries']:,} deliveries spread over 90 days, 1,000 acknowledgements and 200 sightings per "
            f"licensee. Recorded as pages of 100 in {r['record_seconds']:.1f} s, compacted in "
            f"{r['write_seconds']:.1f} s ({r['deliveries'] / r['write_seconds']:,.0f} a second).", "",
            "| report (all rows, through reports.py) | seconds | rows |", "|---|---:|---:|",
            *(f"| {label} | {seconds:.2f} | {count:,} |" for label, seconds, count in r["reports"]), "",
            f"Growth: the deliveries table takes {r['table_bytes'] / 1e6:,.0f} MB, "
            f"{r['table_bytes'] / r['deliveries']:.0f} bytes per delivery; the database file grew from "
            f"{r['size_before'] / 1e6:,.0f} MB (advisories) to {r['size_deliveries'] / 1e6:,.0f} MB with the deliveries "
            f"(the page records' space, freed by compaction, is reused by SQLite) and "
            f"{r['size_after'] / 1e6:,.0f} MB with acknowledgements and sightings.", ""]
    lines += ["<!-- bench_deliveries: end -->"]
    return "\n".join(lines)


def write_section(section: str) -> None:
    path = REPO / "docs" / "benchmarks.md"
    text = path.read_text()
    marked = re.compile(r"<!-- bench_deliveries: begin -->.*?<!-- bench_deliveries: end -->", re.S)
    text = marked.sub(lambda _: section, text) if marked.search(text) else text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=10_000, help="advisories served in the throughput part")
    parser.add_argument("--licensees", type=int, default=20, help="licensees paging through them")
    parser.add_argument("--scale-advisories", type=int, default=100_000)
    parser.add_argument("--scale-licensees", type=int, default=50)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--write", action="store_true", help="write the figures into docs/benchmarks.md")
    args = parser.parse_args()
    throughput_result = scale_result = None
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, SQLite")
    if not args.skip_throughput:
        result = throughput_result = throughput(args.objects, args.licensees)
        rate = result["pages_per_second"]
        print(f"\nGET objects pages (limit 100), {result['objects']} advisories, {result['licensees']} licensees "
              f"each paging through all of them ({result['pages_each']} pages per server):")
        print(f"  without tracking  {rate['untracked']:8.1f} pages/s")
        print(f"  with tracking     {rate['tracked']:8.1f} pages/s   ({result['recorded']} deliveries recorded)")
        print(f"  overhead          {result['overhead'] * 100:8.1f} %")
        cpu = result["cpu_ms_per_page"]
        print(f"  server CPU per page: {cpu['untracked']:.2f} ms without, {cpu['tracked']:.2f} ms with tracking "
              f"({result['cpu_overhead'] * 100:+.1f} %)")
        print(f"  then, off the read path: {result['recorded']} deliveries compacted in "
              f"{result['compaction_seconds']:.2f} s ({result['recorded'] / result['compaction_seconds']:,.0f} a second)")
    if not args.skip_scale:
        result = scale_result = scale(args.scale_advisories, args.scale_licensees)
        print(f"\nScale: {result['advisories']} advisories x {result['licensees']} licensees = "
              f"{result['deliveries']} deliveries, 1,000 acknowledgements and 200 sightings per licensee")
        print(f"  recorded as pages of 100 in {result['record_seconds']:.1f} s, then compacted into one record per "
              f"delivery in {result['write_seconds']:.1f} s ({result['deliveries'] / result['write_seconds']:,.0f} a second)")
        print(f"  database file {result['size_before'] / 1e6:.0f} MB with the advisories, "
              f"{result['size_deliveries'] / 1e6:.0f} MB with the deliveries, "
              f"{result['size_after'] / 1e6:.0f} MB with acknowledgements and sightings")
        print(f"  the deliveries table: {result['table_bytes'] / 1e6:.0f} MB, "
              f"{result['table_bytes'] / result['deliveries']:.0f} bytes per delivery")
        for label, seconds, count in result["reports"]:
            print(f"  {label:<36}{seconds:8.2f} s   ({count} rows)")

    if args.write:
        write_section(render_section(throughput_result, scale_result,
                                     "scripts/bench_deliveries.py " + " ".join(sys.argv[1:])))
        print("\nwrote the Compliance records section of docs/benchmarks.md")


if __name__ == "__main__":
    main()
