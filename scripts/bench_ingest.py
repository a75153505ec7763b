"""What one write costs with the exchange's rules on: indicators stored per second and CPU per object.

One worker, every object new and fully validated, the shipped config's rules on
(the anonymous community collection with its TLP ceiling, a licensee posting
indicators marked TLP:GREEN under its own `created_by_ref`). The collection is
first loaded through the Store interface (as scripts/bench does) to a small and
to a large size; then, side by side at both sizes:
- in-process: `store_objects` (the one write path of POST) on envelopes of 100
  and 1,000, wall and CPU time per object, and with --profile, where the time of
  one 1,000-object envelope goes (cProfile, by stage);
- over HTTP: POST envelopes to `taxii-server serve --workers 1`, indicators/s
  and the server process's CPU seconds per 1,000 objects (less noisy on a busy
  machine than wall time);
- `taxii-server import` of a bundle, indicators/s and CPU seconds per 1,000.

    .venv-test/bin/python scripts/bench_ingest.py --large 1000000 --small 10000
    .venv-test/bin/python scripts/bench_ingest.py --profile-only --large 100000
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import json
import os
import pstats
import re
import resource
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import requests
import yaml
from bench_sections import put_section  # scripts/, this script's own folder

REPO = Path(__file__).resolve().parent.parent
# The code measured: this checkout, or (TAXII_SERVER_CODE=DIR) another one, e.g. an earlier commit.
CODE = Path(os.environ.get("TAXII_SERVER_CODE", REPO)).resolve()
sys.path.insert(0, str(CODE))

from taxii_server.app import create_app  # noqa: E402
from taxii_server.auth import Principal  # noqa: E402
from taxii_server.config import load_settings  # noqa: E402
from taxii_server.ingest import StatusReport, store_objects  # noqa: E402
from taxii_server.sharing.screening import screen, store_screened  # noqa: E402
from taxii_server.storage.planning import plan_additions  # noqa: E402
from taxii_server.keys import issue_key  # noqa: E402
from taxii_server.sharing.identities import identity_of  # noqa: E402
from taxii_server.storage import open_store  # noqa: E402
from taxii_server.storage.base import NewVersion  # noqa: E402
from taxii_server.validation import check_objects, objects_from_body  # noqa: E402
from taxii_server.timestamps import format_timestamp, now_micros, parse_timestamp  # noqa: E402

TAXII = "application/taxii+json;version=2.1"
EPOCH = parse_timestamp("2025-01-01T00:00:00Z")
TLP_GREEN = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"
LOADED, POSTED, IMPORTED = 1, 2, 3  # id groups: objects never collide between phases


def stamp(n: int) -> str:
    """A distinct time for each object, as a real feed has: no timestamp text repeats across objects."""
    return format_timestamp(EPOCH + n * 1000)[:23] + "Z"


def indicator(group: int, n: int, creator: str) -> dict:
    """A licensee's indicator: one of four pattern shapes, TLP:GREEN, created by the licensee."""
    kind, when = n % 4, stamp(n)
    if kind == 0:
        pattern = f"[ipv4-addr:value = '10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}']"
    elif kind == 1:
        pattern = f"[domain-name:value = 'login-{n}.example.net']"
    elif kind == 2:
        pattern = f"[file:hashes.'SHA-256' = '{n:064x}']"
    else:
        pattern = f"[url:value = 'http://dl-{n}.example.org/payload.bin']"
    return {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{group:08x}-0000-4000-8000-{n:012x}",
            "created": when, "modified": when, "created_by_ref": creator, "name": f"Indicator {n}",
            "description": "Seen scanning port 8080 from this address since 2026-01-01.",
            "indicator_types": ["malicious-activity"], "object_marking_refs": [TLP_GREEN],
            "pattern": pattern, "pattern_type": "stix", "valid_from": when}


def prebuilt(group: int, n: int) -> NewVersion:
    """A stored version of an indicator, built without validation: only for filling the store."""
    item = indicator(group, n, "identity--00000000-0000-4000-8000-000000000000")
    body = orjson.dumps(item, option=orjson.OPT_SORT_KEYS)
    return NewVersion(item["id"], "indicator", item["modified"], parse_timestamp(item["modified"]), "2.1",
                      hashlib.sha256(body).digest(), body)


def deployment(folder: Path):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config.update(storage="sqlite:///taxii.sqlite3", secret_file="server.secret",
                  collections_dir=str(REPO / "collections"))
    config["sharing"]["scrubbing_rules"] = str(REPO / "scrubbing.yaml")
    config["rate_limit"] = {"requests_per_minute": 100000, "burst": 100000}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return load_settings(folder / "config.yaml", environ={})


def load(settings, collection_id: str, upto: int, start: int = 0) -> float:
    store = open_store(settings.storage_url)
    began = time.perf_counter()
    for first in range(start, upto, 20_000):
        store.add_versions(collection_id, [prebuilt(LOADED, n) for n in range(first, min(upto, first + 20_000))])
    store.close()
    return time.perf_counter() - began


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def in_process(settings, count: int, envelope: int, first: int) -> dict:
    """store_objects on `count` new indicators in envelopes of `envelope`: per second, CPU µs per object."""
    app = create_app(settings)
    services = app.extensions["taxii"]
    store = services.store
    principal = Principal(settings.operators["northtel"], "bench")
    collection = settings.collection("community")
    creator = identity_of(principal.operator)
    envelopes = [[indicator(POSTED, n, creator) for n in range(s, min(first + count, s + envelope))]
                 for s in range(first, first + count, envelope)]
    wall, used, stored = time.perf_counter(), cpu(), 0
    with app.app_context():  # where a POST runs (its metrics are noted on the request)
        for items in envelopes:
            stored += store_objects(services, principal, collection, items, now_micros()).success_count
    wall, used = time.perf_counter() - wall, cpu() - used
    store.close()
    if stored != count:
        raise SystemExit(f"in-process: {stored} of {count} stored")
    return {"envelope": envelope, "objects": count, "per_second": round(count / wall),
            "cpu_us_per_object": round(used / count * 1e6, 1)}


# Where the time of one POST goes, by stage: (stage, functions whose cumulative time it is, minus the stages
# nested in them). Stages are measured inside one another, so each is its functions' time less its inner stages'.
STAGES = (
    ("parsing the body (orjson)", ("objects_from_body",), ()),
    ("validation (fast path, stix2 where needed)", ("check_objects",), ()),
    ("sharing rules: TLP, ownership, skew, anonymisation", ("screen",), ("check_objects",)),
    ("planning (duplicates, owners, date_added)", ("plan_additions",), ()),
    ("status resource", ("__call__",), ()),
    ("SQL: held versions, inserts, commit", ("add_versions",), ("plan_additions", "__call__")),
    ("purging expired statuses", ("purge_expired_statuses",), ()),
)
STAGE_FILES = {"objects_from_body": "validation.py", "check_objects": "validation.py", "screen": "screening.py",
               "plan_additions": "planning.py", "__call__": "ingest.py", "add_versions": "sqlite.py",
               "purge_expired_statuses": "retention.py"}


def _cumulative(stats: pstats.Stats, name: str) -> float:
    return sum(entry[3] for (path, _, function), entry in stats.stats.items()
               if function == name and path.endswith(STAGE_FILES[name]))


def profile_post(settings, objects: int, first: int) -> dict:
    """cProfile of one POST's work in-process (body parsing included): microseconds per object by stage."""
    app = create_app(settings)
    services = app.extensions["taxii"]
    principal = Principal(settings.operators["northtel"], "bench")
    collection = settings.collection("community")
    creator = identity_of(principal.operator)
    body = orjson.dumps({"objects": [indicator(POSTED, n, creator) for n in range(first, first + objects)]})
    profiler = cProfile.Profile()
    with app.app_context():
        profiler.enable()
        items = objects_from_body(body)
        report = store_objects(services, principal, collection, items, now_micros())
        profiler.disable()
    services.store.close()
    if report.success_count != objects:
        raise SystemExit(f"profile: {report.success_count} of {objects} stored")
    stats = pstats.Stats(profiler)
    total = sum(entry[2] for entry in stats.stats.values())
    result = {}
    for stage, outer, inner in STAGES:
        seconds = sum(_cumulative(stats, n) for n in outer) - sum(_cumulative(stats, n) for n in inner)
        result[stage] = round(seconds / objects * 1e6, 1)
    result["total (under the profiler)"] = round(total / objects * 1e6, 1)
    return result


def stage_times(settings, objects: int, first: int, rounds: int = 3) -> dict:
    """CPU microseconds per object of each stage of one POST, timed without a profiler (which
    inflates code made of many small calls): each stage run on its own, best of `rounds` posts.
    The garbage collector is held off while they run: its pauses fall on whichever stage
    happens to allocate last (the in-process figures include it)."""
    app = create_app(settings)
    services = app.extensions["taxii"]
    principal = Principal(settings.operators["northtel"], "bench")
    collection = settings.collection("community")
    creator = identity_of(principal.operator)
    best: dict[str, float] = {}
    with app.app_context():
        for round_ in range(rounds):
            start = first + round_ * objects
            body = orjson.dumps({"objects": [indicator(POSTED, n, creator) for n in range(start, start + objects)]})
            gc.collect()
            gc.disable()
            timings, began = {}, time.process_time()
            items = objects_from_body(body)
            timings["parsing the body (orjson)"], began = time.process_time() - began, time.process_time()
            check_objects(items, settings.work)
            timings["validation"], began = time.process_time() - began, time.process_time()
            screening = screen(settings, principal, collection, items, now_micros())
            timings["sharing rules (screen, less its validation)"] = (time.process_time() - began
                                                                       - timings["validation"])
            began = time.process_time()
            plan_additions(screening.accepted, {}, 0, now_micros, screening.submission)
            timings["planning"], began = time.process_time() - began, time.process_time()
            report = StatusReport(now_micros(), principal.operator.id, screening.checked)
            store_screened(services.store, collection, screening, status_for=report)
            timings["store: look-up, status, SQL, commit (less planning)"] = (time.process_time() - began
                                                                             - timings["planning"])
            gc.enable()
            if report.success_count != objects:
                raise SystemExit(f"stages: {report.success_count} of {objects} stored")
            for stage, seconds in timings.items():
                best[stage] = min(best.get(stage, seconds), seconds)
    services.store.close()
    result = {stage: round(seconds / objects * 1e6, 1) for stage, seconds in best.items()}
    result["total"] = round(sum(result.values()), 1)
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from taxii_server.cli import main; main()", *args]


def child_environment() -> dict:
    return {**os.environ, "PYTHONPATH": str(CODE)}


def process_cpu(pid: int) -> float:
    """CPU seconds of a process and of its children (gunicorn's worker)."""
    ticks, total = os.sysconf("SC_CLK_TCK"), 0
    pids = [pid] + [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _parent(p) == pid]
    for each in pids:
        try:
            parts = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(parts[11]) + int(parts[12])
    return total / ticks


def _parent(entry: Path) -> int | None:
    try:
        return int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def over_http(settings, folder: Path, count: int, envelope: int, first: int) -> dict:
    """POST envelopes to `taxii-server serve --workers 1`: indicators/s and server CPU seconds per 1,000."""
    store = open_store(settings.storage_url)
    key = issue_key(store, settings.secret, "northtel", label="benchmark").raw_key
    store.close()
    port = free_port()
    log = open(folder / f"serve-{envelope}.log", "wb")
    server = subprocess.Popen(cli("serve", "--config", str(folder / "config.yaml"), "--host", "127.0.0.1",
                                  "--port", str(port), "--workers", "1"), stdout=log, stderr=subprocess.STDOUT,
                              cwd=folder, env=child_environment(), start_new_session=True)
    try:
        session = requests.Session()
        session.headers.update({"Accept": TAXII, "Content-Type": TAXII, "Authorization": f"Bearer {key}"})
        url = f"http://127.0.0.1:{port}/api/collections/{settings.collection('community').id}/objects/"
        deadline = time.monotonic() + 120
        while True:
            try:
                if session.get(f"http://127.0.0.1:{port}/taxii2/", timeout=60).status_code == 200:
                    break
            except requests.ConnectionError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit(f"the server did not start: {(folder / f'serve-{envelope}.log').read_text()}")
                time.sleep(0.2)
        creator = identity_of(settings.operators["northtel"])
        # Warm-up (imports, first connections, the anonymous identity object): not counted.
        session.post(url, data=orjson.dumps({"objects": [indicator(POSTED, n, creator)
                                                           for n in range(first - envelope, first)]}), timeout=600)
        bodies = [orjson.dumps({"objects": [indicator(POSTED, n, creator)
                                            for n in range(start, min(first + count, start + envelope))]})
                  for start in range(first, first + count, envelope)]
        stored, cpu_before, began = 0, process_cpu(server.pid), time.perf_counter()
        for body in bodies:
            response = session.post(url, data=body, timeout=600)
            if response.status_code != 202:
                raise SystemExit(f"POST: HTTP {response.status_code}: {response.text[:300]}")
            stored += response.json()["success_count"]
        seconds, cpu_seconds = time.perf_counter() - began, process_cpu(server.pid) - cpu_before
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    if stored != count:
        raise SystemExit(f"POST: {stored} of {count} stored")
    return {"envelope": envelope, "objects": count, "per_second": round(count / seconds),
            "server_cpu_s_per_1000": round(cpu_seconds / count * 1000, 3)}


def through_import(settings, folder: Path, count: int, first: int) -> dict:
    """`taxii-server import --as northtel` of a bundle: indicators/s (process start included), CPU per 1,000."""
    creator = identity_of(settings.operators["northtel"])
    bundle = folder / f"bundle-{first}.json"
    bundle.write_bytes(orjson.dumps({"type": "bundle", "id": "bundle--00000000-0000-4000-8000-000000000001",
                                     "objects": [indicator(IMPORTED, n, creator)
                                                 for n in range(first, first + count)]}))
    began, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(cli("import", str(bundle), "--collection", "community", "--as", "northtel",
                              "--config", str(folder / "config.yaml")),
                          capture_output=True, text=True, env=child_environment(), cwd=folder)
    seconds, after = time.perf_counter() - began, resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"import failed: {done.stderr[-2000:]}")
    stored = int(done.stdout.strip().splitlines()[-1].split()[0])
    used = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"objects": count, "stored": stored, "per_second": round(stored / seconds),
            "cpu_s_per_1000": round(used / count * 1000, 3)}


def measure(folder: Path, objects: int, profile_only: bool) -> dict:
    """Every measurement into the community collection of the store in `folder`, with the code in CODE."""
    settings = deployment(folder)
    in_process(settings, 1000, 1000, 40_000_000)  # warm-up: imports, caches
    result = {"stages": stage_times(settings, 1000, 45_000_000),
              "profile": profile_post(settings, 1000, 50_000_000),
              "in_process": [in_process(settings, objects, envelope, base)
                             for envelope, base in ((100, 60_000_000), (1000, 70_000_000))]}
    if not profile_only:
        result["http"] = [over_http(settings, folder, objects, envelope, base)
                          for envelope, base in ((100, 80_000_000), (1000, 90_000_000))]
        result["import"] = through_import(settings, folder, objects, 100_000_000)
    return result


def measure_each(size: int, codes: dict[str, Path], args, folder: Path) -> dict:
    """Load a store to `size` objects once, then measure each code on its own copy of it, in turn."""
    loaded = folder / "loaded"
    loaded.mkdir(parents=True)
    settings = deployment(loaded)
    seconds = load(settings, settings.collection("community").id, size)
    _checkpoint(loaded / "taxii.sqlite3")
    print(f"[{size:,}] loaded in {seconds:.0f} s", file=sys.stderr, flush=True)
    results = {}
    for name, code in codes.items():
        copy = folder / name
        copy.mkdir()
        shutil.copy(loaded / "taxii.sqlite3", copy / "taxii.sqlite3")
        shutil.copy(loaded / "server.secret", copy / "server.secret")
        command = [sys.executable, __file__, "--measure", str(copy), "--objects", str(args.objects)]
        if args.profile_only:
            command.append("--profile-only")
        done = subprocess.run(command, capture_output=True, text=True,
                              env={**os.environ, "TAXII_SERVER_CODE": str(code)})
        if done.returncode != 0:
            raise SystemExit(f"measuring {name} at {size:,}: {done.stderr[-3000:]}")
        results[name] = json.loads(done.stdout)
        shutil.rmtree(copy)
        print(f"[{size:,}] {name}: {results[name]}", file=sys.stderr, flush=True)
    shutil.rmtree(loaded)
    return results


def _checkpoint(path: Path) -> None:
    """Fold the write-ahead log into the database file, so that a copy of the file is the whole store."""
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--objects", type=int, default=10_000, help="indicators posted per measurement")
    parser.add_argument("--before", help="a checkout of earlier code (taxii_server/ and schemas/) to measure in turn")
    parser.add_argument("--before-label", help="how to name the earlier code in the report (default: its last commit)")
    parser.add_argument("--profile-only", action="store_true", help="in-process figures and the profile only")
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--markdown", help="write the results as a section of this file (docs/benchmarks.md)")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # one code on one store: the child of a run
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure), args.objects, args.profile_only)))
        return
    codes = {"before": Path(args.before).resolve()} if args.before else {}
    codes["this code"] = CODE
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as folder:
        results = {"started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
                   "load_average_at_start": round(os.getloadavg()[0], 1), "objects": args.objects,
                   "codes": {name: _described(code) for name, code in codes.items()}, "sizes": {}}
        if args.before_label and args.before:
            results["codes"]["before"] = args.before_label
        for size in (args.small, args.large):
            results["sizes"][size] = measure_each(size, codes, args, Path(folder) / str(size))
        results["load_average_at_end"] = round(os.getloadavg()[0], 1)
    text = json.dumps(results, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    if args.markdown:
        write_section(Path(args.markdown), results)


def _described(code: Path) -> str:
    commit = subprocess.run(["git", "-C", str(code), "log", "-1", "--format=%h %s"], capture_output=True, text=True)
    return commit.stdout.strip()[:90] if commit.returncode == 0 and commit.stdout.strip() else str(code)


# Written by hand inside the section (what the profile showed, what was changed): kept on rewrite.
NOTES_BEGIN, NOTES_END = "<!-- bench_ingest notes: begin -->", "<!-- bench_ingest notes: end -->"


def write_section(path: Path, results: dict) -> None:
    text = path.read_text() if path.exists() else ""
    notes = re.search(re.escape(NOTES_BEGIN) + ".*?" + re.escape(NOTES_END), text, flags=re.S)
    put_section(path, "bench_ingest", "\n".join(["", "## Ingest with the sharing rules on (scripts/bench_ingest.py)", "",
                                                 *render(results), "", *([notes.group(0), ""] if notes else [])]))
    print(f"wrote the ingest section of {path}", file=sys.stderr)


def render(results: dict) -> list[str]:
    sizes = list(results["sizes"])
    small, large = sizes[0], sizes[-1]
    codes = list(results["codes"])
    lines = [f"Run {results['started']}, load average {results['load_average_at_start']} at the start and "
             f"{results['load_average_at_end']} at the end (2 cores, shared). {results['objects']:,} new indicators "
             "per figure, posted by a licensee to the anonymous community collection (TLP:GREEN, its own "
             "`created_by_ref`, anonymised), one worker. Code measured: "
             + "; ".join(f"{name}: {described}" for name, described in results["codes"].items()) + ".", "",
             "Wall-clock figures move with the other work on the machine; CPU figures (the server process's "
             "CPU seconds per 1,000 objects, and what they would allow on one free core) much less.", "",
             "| code | path | envelope | into " + f"{int(small):,}" + " /s | into " + f"{int(large):,}"
             + " /s | wall ratio | CPU s/1,000 at " + f"{int(small):,}" + " | CPU s/1,000 at " + f"{int(large):,}"
             + " | CPU ratio | /s per free core at " + f"{int(large):,} |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for code in codes:
        at_small, at_large = results["sizes"][small][code], results["sizes"][large][code]
        rows = [("in-process store_objects", a, b, "cpu_us_per_object", 1e-3)
                for a, b in zip(at_small["in_process"], at_large["in_process"])]
        rows += [("POST over HTTP", a, b, "server_cpu_s_per_1000", 1)
                 for a, b in zip(at_small.get("http", []), at_large.get("http", []))]
        if "import" in at_small:
            rows.append(("taxii-server import", {**at_small["import"], "envelope": "500 (batch)"},
                         {**at_large["import"], "envelope": "500 (batch)"}, "cpu_s_per_1000", 1))
        for path, a, b, cpu_key, scale in rows:
            cpu_a, cpu_b = a[cpu_key] * scale, b[cpu_key] * scale
            lines.append(f"| {code} | {path} | {a['envelope']} | {a['per_second']:,} | {b['per_second']:,} | "
                         f"{b['per_second'] / a['per_second']:.2f} | {cpu_a:.3f} | {cpu_b:.3f} | "
                         f"{cpu_a / cpu_b:.2f} | {1000 / cpu_b:,.0f} |")
    lines += ["", "CPU ratio: CPU per object at the small size over CPU per object at the large one "
              "(1.0: cost flat in the store's size). The import's CPU includes the process's start.", "",
              f"Where the CPU time of one 1,000-indicator post goes at {int(large):,}, in microseconds per object, "
              "each stage timed on its own without a profiler (garbage collection held off), best of 3:", "",
              "| stage | " + " | ".join(codes) + " |", "|---|" + "---|" * len(codes)]
    stages = results["sizes"][large][codes[-1]]["stages"]
    for stage in stages:
        lines.append(f"| {stage} | " + " | ".join(str(results["sizes"][large][c]["stages"].get(stage, ""))
                                                   for c in codes) + " |")
    lines += ["", "The same post under cProfile (cumulative time by stage, microseconds per object; the profiler "
              "inflates code made of many small calls, validation and anonymisation most):", "",
              "| stage | " + " | ".join(codes) + " |", "|---|" + "---|" * len(codes)]
    for stage in results["sizes"][large][codes[-1]]["profile"]:
        lines.append(f"| {stage} | " + " | ".join(str(results["sizes"][large][c]["profile"].get(stage, ""))
                                                   for c in codes) + " |")
    return lines


if __name__ == "__main__":
    main()
