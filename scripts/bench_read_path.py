#!/usr/bin/env python3
"""Throughput of the read path under load, against a bare Flask app serving the same bytes.

Loads 1,000 indicators into a fresh SQLite store and serves it with gunicorn
(2 workers, gthread, 4 threads each), then drives GET objects (one 100-object
page) with `wrk` (2 threads, 8 connections). A bare Flask app that returns the
very same response bytes runs under the same gunicorn settings. With
`--before DIR`, the code in DIR (a checkout of an earlier commit) is measured
the same way in the same run. Rounds alternate between the servers so that
load from elsewhere on the machine falls on all of them alike.

The rate limit is on, set high enough that no request is refused: the limiter
runs on every request as it does in production, and the audit trail records
every request.

    .venv-test/bin/python scripts/bench_read_path.py [--seconds 10] [--rounds 3] [--before ../main] \
        [--write docs/benchmarks.md [--spy]]  # the figures and the profile, as a section of that file
    .venv-test/bin/python scripts/bench_read_path.py --profile   # where one request's time goes, in process
    .venv-test/bin/python scripts/bench_read_path.py --ablate [--write docs/benchmarks.md]

`--ablate` measures what each part of every request's own work costs when served:
the same deployment with one of them taken out (the request line, the audit record,
the metrics, the rate limit, and the store check: SQLite's `PRAGMA data_version`,
asked once a request so that no cached page or key outlives a write), then the four
records together, then all five, beside the whole server and the bare app. They are
taken out by a wrapper module the benchmark writes for itself (ABLATED_APP), never by
anything in the server's code; without the store check a server would serve stale
pages, so that row is a bound, not an option. Besides requests/s, it gives the CPU
time the gunicorn workers spent per request (Linux /proc), which the machine's noise
moves less.

`--write` replaces the section between the markers below in the file (or appends
it); `scripts/bench` keeps such sections when it rewrites the file.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import requests
import yaml
from bench_sections import put_section  # scripts/, this script's own folder

REPO = Path(__file__).resolve().parent.parent
TAXII = "application/taxii+json;version=2.1"
OBJECTS = 1_000
PAGE = 100
SORT = os.environ.get("BENCH_PROFILE_SORT", "tottime")
GUNICORN = ["--workers", "2", "--threads", "4", "--no-control-socket", "--log-level", "warning"]

SETUP = textwrap.dedent("""
    import sys, uuid
    from taxii_server.config import load_settings
    from taxii_server.keys import issue_key
    from taxii_server.storage import open_store
    from taxii_server.validation import check_object

    def indicator(n):
        return {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.UUID(int=n + 1, version=4)}",
                "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
                "name": f"bench {n}", "pattern": f"[ipv4-addr:value = '10.0.{n >> 8 & 255}.{n & 255}']",
                "pattern_type": "stix", "valid_from": "2026-01-01T00:00:00Z"}

    settings = load_settings(sys.argv[1], environ={})
    store = open_store(settings.storage_url)
    collection = settings.collection("community").id
    store.add_versions(collection, [check_object(indicator(n)) for n in range(int(sys.argv[2]))])
    print(collection)
    print(issue_key(store, settings.secret, "northtel").raw_key)
""")

BARE_APP = textwrap.dedent("""
    from pathlib import Path
    from flask import Flask, Response

    BODY = Path(__file__).with_name("page.json").read_bytes()
    app = Flask(__name__)

    @app.get("/api/collections/<collection_id>/objects/")
    def objects(collection_id):
        return Response(BODY, content_type="application/taxii+json;version=2.1")
""")


class Deployment:
    """One code base (this checkout or `code`), its own store, served by gunicorn."""

    def __init__(self, name: str, folder: Path, code: Path):
        self.name, self.folder, self.code = name, folder, code
        folder.mkdir(parents=True)
        self.config = folder / "config.yaml"
        self.config.write_text(yaml.safe_dump({
            "title": "bench", "storage": "sqlite:///bench.sqlite3", "secret_file": "secret",
            "collections_dir": str(code / "collections"), "api_root": {"path": "api", "title": "bench"},
            "paging": {"default_limit": PAGE, "max_limit": 1000},
            # On, and high enough never to refuse: the limiter's cost is part of what is measured.
            "rate_limit": {"requests_per_minute": 60_000_000},
            "operators": [{"id": "regulator", "role": "regulator"}, {"id": "northtel", "role": "licensee"}]}))
        made = subprocess.run([sys.executable, "-c", SETUP, str(self.config), str(OBJECTS)], env=self.environ(),
                              capture_output=True, text=True, check=True, cwd=folder)
        self.collection, self.key = made.stdout.split()
        self.path = f"/api/collections/{self.collection}/objects/?limit={PAGE}"

    def environ(self) -> dict:
        environ = {name: value for name, value in os.environ.items() if not name.startswith("TAXII_")}
        environ["PYTHONPATH"] = str(self.code)
        environ["TAXII_CONFIG"] = str(self.config)
        return environ

    def command(self, port: int) -> list[str]:
        return [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", *GUNICORN,
                "--worker-class", "taxii_server.server.ClientCertificateWorker", "taxii_server.wsgi:app"]

    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.key}", "Accept": TAXII}


class Variant:
    """`deployment` served as it is, asked or set up differently by a subclass."""

    def __init__(self, deployment: Deployment, name: str):
        self.deployment, self.name = deployment, name
        self.path, self.folder = deployment.path, deployment.folder

    def environ(self) -> dict:
        return self.deployment.environ()

    def command(self, port: int) -> list[str]:
        return self.deployment.command(port)

    def headers(self) -> dict:
        return self.deployment.headers()


class DistinctPages(Variant):
    """The same deployment, asked for a different page on each request: GET objects
    after a bookmark drawn at random from the first OBJECTS - PAGE objects' date_added,
    so each answer is a full page and SQLite's page cache (storage/page_cache.py) is
    almost never of use. What a crowd of pollers at different places costs."""

    def __init__(self, deployment: Deployment, url: str):
        super().__init__(deployment, deployment.name + ", a different page each request")
        manifest = requests.get(url + f"/api/collections/{deployment.collection}/manifest/?limit={OBJECTS}",
                                headers=deployment.headers()).json()["objects"]
        bookmarks = [entry["date_added"] for entry in manifest[:OBJECTS - PAGE]]
        paths = ",\n".join(f'  "{self.path}&added_after={bookmark}"' for bookmark in bookmarks)
        self.script = str(deployment.folder / "distinct_pages.lua")
        Path(self.script).write_text(f"local paths = {{\n{paths}\n}}\n"
                                     "request = function() return wrk.format(nil, paths[math.random(#paths)]) end\n")


# The per-request work --ablate takes out: hooks by (kind, module, function); the rate limit by its
# call; the store check by taking every request's reads to be of the store as it was (unsafe: measurement only).
ABLATED_APP = textwrap.dedent("""
    import os
    from taxii_server import limits
    from taxii_server.storage.sqlite import SQLiteStore
    from taxii_server.wsgi import app

    HOOKS = {
        "request line": [("before_request", "taxii_server.ops.logs", "_begin"),
                         ("after_request", "taxii_server.ops.logs", "_finish")],
        "audit record": [("after_request", "taxii_server.app", "_audit")],
        "metrics": [("before_request", "taxii_server.ops.metrics", "_start_clock"),
                    ("after_request", "taxii_server.ops.metrics", "_count")],
        "rate limit": [],
        "store check": [],
    }
    for part in filter(None, os.environ["BENCH_WITHOUT"].split(",")):
        if part == "rate limit":
            limits.enforce_key = lambda *args: None
        if part == "store check":
            assert "PRAGMA data_version" in SQLiteStore.begin_reading.__code__.co_consts, "the store check moved"
            SQLiteStore.begin_reading = lambda store: setattr(store._local, "data_version", 0)
        for kind, module, name in HOOKS[part]:
            hooks = getattr(app, kind + "_funcs")[None]
            kept = [hook for hook in hooks if (hook.__module__, hook.__name__) != (module, name)]
            assert len(kept) == len(hooks) - 1, f"no {kind} hook {module}.{name}"
            hooks[:] = kept
""")
RECORDS = ["request line", "audit record", "metrics", "rate limit"]
ABLATIONS = [*RECORDS, "store check"]


class Ablated(Variant):
    """`deployment` served with some of each request's own work taken out (ABLATED_APP)."""

    def __init__(self, deployment: Deployment, parts: list[str]):
        super().__init__(deployment, "without " + (parts[0] if len(parts) == 1 else
                                                   "the four records" if parts == RECORDS else "all five"))
        self.parts = parts
        (deployment.folder / "ablated.py").write_text(ABLATED_APP)

    def environ(self) -> dict:
        environ = super().environ()
        environ["PYTHONPATH"] += os.pathsep + str(self.folder)
        environ["BENCH_WITHOUT"] = ",".join(self.parts)
        return environ

    def command(self, port: int) -> list[str]:
        return [*super().command(port)[:-1], "ablated:app"]


class BareFlask:
    name = "bare Flask"

    def __init__(self, folder: Path, body: bytes, path: str):
        folder.mkdir(parents=True)
        (folder / "page.json").write_bytes(body)
        (folder / "bare.py").write_text(BARE_APP)
        self.folder, self.path = folder, path

    def environ(self) -> dict:
        return {**os.environ, "PYTHONPATH": str(self.folder)}

    def command(self, port: int) -> list[str]:
        return [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", *GUNICORN,
                "--worker-class", "gthread", "bare:app"]

    def headers(self) -> dict:
        return {"Accept": TAXII}


def commit_of(checkout: Path) -> str:
    found = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(checkout), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return (found.stdout.strip() or "unknown commit") + (" with changes" if dirty else "")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(target) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(target.command(port), env=target.environ(), cwd=getattr(target, "folder", None),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if requests.get(url + target.path, headers=target.headers(), timeout=30).status_code == 200:
                return process, url
        except requests.RequestException:  # not listening yet, or a loaded machine slow to answer
            pass
        time.sleep(0.1)
    process.kill()
    raise SystemExit(f"{target.name} did not start")


def run_wrk(target, url: str, seconds: int) -> dict:
    headers = [arg for name, value in target.headers().items() for arg in ("-H", f"{name}: {value}")]
    script = ["-s", target.script] if getattr(target, "script", None) else []
    out = subprocess.run(["wrk", "-t2", "-c8", f"-d{seconds}s", "--latency", *script, *headers, url + target.path],
                         capture_output=True, text=True, check=True).stdout
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if bad:
        raise SystemExit(f"{target.name}: {bad.group(1)} responses were not 2xx:\n{out}")
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p99_ms": _millis(re.search(r"99%\s+([\d.]+\w+)", out).group(1))}


def _millis(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]


def compared_with(deployment: Deployment) -> list:
    """The targets measured side by side: a bare Flask app serving `deployment`'s page (the
    very same bytes), the deployment, and the deployment asked for a different page each request."""
    process, url = serve(deployment)
    try:
        body = requests.get(url + deployment.path, headers=deployment.headers(), timeout=60).content
        distinct = DistinctPages(deployment, url)
    finally:
        process.terminate()
        process.wait(timeout=30)
    if body.count(b'"type":"indicator"') != PAGE:
        raise SystemExit(f"the page does not hold {PAGE} indicators: {body[:200]!r}")
    return [BareFlask(deployment.folder.parent / "bare", body, deployment.path), deployment, distinct]


def worker_cpu_seconds(arbiter: subprocess.Popen) -> dict[int, float]:
    """User and system CPU time of each of the gunicorn arbiter's workers so far (Linux /proc)."""
    children = subprocess.run(["pgrep", "-P", str(arbiter.pid)], capture_output=True, text=True).stdout.split()
    seconds = {}
    for pid in map(int, children):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # gone meanwhile
            continue
        seconds[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    return seconds


# Now and then one gunicorn worker does nearly all the work of a round while the other
# idles (seen for every server alike, the bare app most: 1,807 and 1,920 requests/s among
# rounds of 5,203-5,986 in one run). Such a round measures one process instead of the
# set-up, and is run again.
LOPSIDED = 0.2  # a round is lopsided when a worker spent less than this share of the workers' CPU time
MAX_TRIES = 4


def measured_round(target, seconds: int) -> dict:
    """One round against `target` on a server started afresh, run again while one worker did
    almost all the work; "tries" says how many it took."""
    for tries in range(1, MAX_TRIES + 1):
        process, url = serve(target)
        try:
            run_wrk(target, url, 2)  # warm-up: imports, connections, caches
            before = worker_cpu_seconds(process)
            run = run_wrk(target, url, seconds)
            spent = [after - before.get(pid, 0.0) for pid, after in worker_cpu_seconds(process).items()]
        finally:
            process.terminate()
            process.wait(timeout=30)
        run["cpu_us"] = sum(spent) / (run["rps"] * seconds) * 1e6
        run["tries"] = tries
        if min(spent, default=0.0) >= LOPSIDED * sum(spent):
            break
    return run


def alternate(targets: list, rounds: int, seconds: int) -> dict[str, list[dict]]:
    """wrk against each target in turn, `rounds` times, each on a server started afresh,
    so that load from elsewhere on the machine falls on all of them alike."""
    results: dict[str, list[dict]] = {target.name: [] for target in targets}
    for round_number in range(rounds):
        for target in targets:
            results[target.name].append(measured_round(target, seconds))
            print(f"round {round_number + 1} {target.name}: {results[target.name][-1]}", file=sys.stderr)
    return results


def measure(args) -> None:
    folder = Path(tempfile.mkdtemp(prefix="taxii-bench-read-"))
    try:
        targets = compared_with(Deployment(f"taxii-server, this checkout ({commit_of(REPO)})", folder / "after", REPO))
        if args.before:
            targets.append(Deployment(f"taxii-server at {commit_of(Path(args.before))} (before)", folder / "before",
                                      Path(args.before)))
        results = alternate(targets, args.rounds, args.seconds)
        table = report(results, targets[0].name, args)
        print(table)
        if args.write:
            write_section(Path(args.write), table, grouped_profile(2000),
                          served_profile(args.seconds) if args.spy else None)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def ablate(args) -> None:
    folder = Path(tempfile.mkdtemp(prefix="taxii-bench-ablate-"))
    try:
        deployment = Deployment("the whole server", folder / "server", REPO)
        bare = compared_with(deployment)[0]
        targets = [bare, deployment, *(Ablated(deployment, [part]) for part in ABLATIONS),
                   Ablated(deployment, RECORDS), Ablated(deployment, ABLATIONS)]
        table = ablation_report(alternate(targets, args.rounds, args.seconds), bare.name, args)
        print(table)
        if args.write:
            put_section(Path(args.write), "bench_read_path_ablation", "\n".join([
                "", "## Read path: what each request's own work costs", "",
                f"Written by `scripts/bench_read_path.py --ablate` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. "
                "The server as shipped, then with one part of each request's own work taken out (by a wrapper "
                "module of the benchmark's own, for this measurement only), then the four records together, "
                "then all five, beside the bare app. Without the store check (`PRAGMA data_version`) the "
                "server would serve pages and keys that a write has changed: that row is a bound, not an "
                "option.", "", table, ""]))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def rerun_note(results: dict) -> str:
    again = {name: sum(r["tries"] - 1 for r in runs) for name, runs in results.items()}
    said = ", ".join(f"{name} {count}" for name, count in again.items() if count) or "none"
    return (f"Rounds run again because one gunicorn worker did nearly all the work (the other under "
            f"{LOPSIDED:.0%} of the workers' CPU time): {said}.")


def ablation_report(results: dict, bare: str, args) -> str:
    return "\n".join([f"The page of the read-path benchmark, same gunicorn and wrk settings; {args.seconds} s x "
                      f"{args.rounds} rounds, alternating; load average {os.getloadavg()[0]:.1f} at the end.", "",
                      *results_table(results, bare), "", rerun_note(results)])


def report(results: dict, bare: str, args) -> str:
    bare_rps = statistics.median(r["rps"] for r in results[bare])
    this, distinct = (statistics.median(r["rps"] for r in runs) / bare_rps for runs in list(results.values())[1:3])
    return "\n".join([
        f"GET objects, one {PAGE}-object page of {OBJECTS} stored; gunicorn 2 workers x 4 threads (gthread); "
        f"wrk 2 threads, 8 connections, {args.seconds} s x {args.rounds} rounds, alternating; "
        f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f} at the end.", "",
        *results_table(results, bare), "",
        f"Target >= 0.6x the bare app: {this:.2f}x, {'held' if this >= 0.6 else 'not held'}. "
        f"With a different page on each request (every page read from the store): {distinct:.2f}x.", "",
        rerun_note(results)])


def results_table(results: dict, bare: str) -> list[str]:
    """A row a server: medians over the rounds, and the gunicorn workers' user and system
    CPU time per request served (Linux /proc), which the machine's noise moves less."""
    lines = ["| server | requests/s (median) | p99 latency ms (median) | x bare Flask "
             "| worker CPU per request, us (median) | every round, requests/s |",
             "|---|---:|---:|---:|---:|---|"]
    bare_rps = statistics.median(r["rps"] for r in results[bare])
    for name, runs in results.items():
        rps, p99, cpu = (statistics.median(r[field] for r in runs) for field in ("rps", "p99_ms", "cpu_us"))
        every = ", ".join(f"{r['rps']:.0f}" for r in runs)
        lines.append(f"| {name} | {rps:.0f} | {p99:.1f} | {rps / bare_rps:.2f} | {cpu:.0f} | {every} |")
    return lines


def write_section(path: Path, table: str, profile_table: str, served_table: str | None = None) -> None:
    served = ["Where the served requests' time goes (gunicorn as above, this server only):", "", served_table, ""]
    section = "\n".join([
        "", "## Read path: a 100-object page against a bare Flask app", "",
        f"Written by `scripts/bench_read_path.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. "
        "Target: >= 0.6x the bare app's throughput.", "", table, "",
        *(served if served_table else []),
        "Where one request's time goes (the application in process, Flask's test client, cProfile own time "
        "grouped by where it is spent):", "", profile_table, ""])
    put_section(path, "bench_read_path", section)
    print(f"wrote the read-path section of {path}", file=sys.stderr)


def _profiled(requests_count: int) -> tuple[pstats.Stats, float]:
    """cProfile over `requests_count` GET objects through Flask's test client, and the
    unprofiled milliseconds per request of the same loop."""
    sys.path.insert(0, str(REPO))
    folder = Path(tempfile.mkdtemp(prefix="taxii-bench-profile-"))
    try:
        target = Deployment("profile", folder / "store", REPO)
        from taxii_server.app import create_app
        from taxii_server.config import load_settings

        app = create_app(load_settings(target.config, environ={}))
        client = app.test_client()
        for _ in range(200):
            client.get(target.path, headers=target.headers())
        started = time.perf_counter()
        for _ in range(requests_count):
            client.get(target.path, headers=target.headers())
        per_request = (time.perf_counter() - started) / requests_count * 1000
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(requests_count):
            assert client.get(target.path, headers=target.headers()).status_code == 200
        profiler.disable()
        app.extensions["taxii"].bookkeeper.stop()
        return pstats.Stats(profiler), per_request
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# Where own time is spent, by the function's file (first match wins).
AREAS = [
    ("SQLite: executing the page and key queries, fetching rows", ("sqlite3.",)),
    ("taxii_server: storage (building the page's records)", ("taxii_server/storage",)),
    ("taxii_server: authentication, rate limit, audit record", ("taxii_server/auth", "taxii_server/keys",
                                                               "taxii_server/limits", "taxii_server/audit",
                                                               "taxii_server/bookkeeping", "taxii_server/app")),
    ("taxii_server: filters, cursor, response", ("taxii_server/",)),
    ("hashing: HMAC of the key and of the next token", ("hmac", "_hashlib")),
    ("Werkzeug and Flask: request, routing, response, context", ("werkzeug", "flask", "blinker")),
    ("Flask's test client itself (not in production)", ("werkzeug/test.py", "flask/testing.py")),
]


# Where the served request spends the interpreter's time (py-spy --gil), by the sampled
# frame's file; the first match wins.
SERVED_AREAS = [
    ("gunicorn: reading requests, writing responses, the worker's loop",
     ("gunicorn/", "selectors.py", "concurrent/futures", "threading.py", "taxii_server/connections",
      "taxii_server/server.py", "email/utils", "socket.py")),
    ("logging: the request line", ("logging/", "taxii_server/ops/logs")),
    ("metrics: counting the request", ("prometheus_client", "taxii_server/ops/metrics")),
    *AREAS[:-1],
]


def py_spy() -> str | None:
    """py-spy on the PATH or beside this Python; None when it is in neither."""
    beside = Path(sys.executable).with_name("py-spy")
    return shutil.which("py-spy") or (str(beside) if beside.exists() else None)


def served_profile(seconds: int) -> str:
    """Where a served GET objects spends the interpreter's time under wrk: py-spy samples
    the thread holding Python's lock in every gunicorn process; own time by area."""
    spy = py_spy()
    folder = Path(tempfile.mkdtemp(prefix="taxii-bench-spy-"))
    try:
        target = Deployment("profile", folder / "store", REPO)
        process, url = serve(target)
        try:
            run_wrk(target, url, 2)
            samples = folder / "samples.txt"
            recorder = subprocess.Popen([spy, "record", "--pid", str(process.pid), "--subprocesses", "--gil",
                                         "--nonblocking", "--rate", "200", "--format", "raw", "--duration",
                                         str(seconds), "--output", str(samples)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            run_wrk(target, url, seconds)
            recorder.wait(timeout=seconds + 60)
        finally:
            process.terminate()
            process.wait(timeout=30)
        totals: dict[str, int] = {}
        for line in samples.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            leaf = stack.rsplit(";", 1)[-1]
            area = next((name for name, needles in SERVED_AREAS if any(n in leaf for n in needles)),
                        "other (Python's standard library and builtins)")
            totals[area] = totals.get(area, 0) + int(count)
        whole = sum(totals.values())
        lines = [f"{whole:,} samples of the thread holding the interpreter's lock, in both workers, "
                 f"during {seconds} s of wrk (py-spy --gil).", "", "| where | share of the time |", "|---|---:|"]
        lines += [f"| {area} | {n / whole:.0%} |" for area, n in sorted(totals.items(), key=lambda kv: -kv[1])]
        return "\n".join(lines)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _area(filename: str, function: str) -> str:
    where = f"{filename}:{function}"
    if "werkzeug/test.py" in where or "flask/testing.py" in where:
        return AREAS[-1][0]
    for name, needles in AREAS:
        if any(needle in where for needle in needles):
            return name
    return "other (Python's standard library and builtins)"


def grouped_profile(requests_count: int) -> str:
    return grouped_table(*_profiled(requests_count))


def grouped_table(stats: pstats.Stats, per_request: float) -> str:
    totals: dict[str, float] = {}
    for (filename, _, function), (_, _, own, _, _) in stats.stats.items():
        area = _area(filename, function)
        totals[area] = totals.get(area, 0.0) + own
    whole = sum(totals.values())
    lines = [f"{per_request:.2f} ms per request unprofiled, in process.", "",
             "| where | share of the time |", "|---|---:|"]
    lines += [f"| {area} | {share / whole:.0%} |" for area, share in sorted(totals.items(), key=lambda kv: -kv[1])]
    return "\n".join(lines)


def profile(requests_count: int) -> None:
    """Where one request's time goes: the application in this process, under Flask's test client."""
    stats, per_request = _profiled(requests_count)
    print(f"{requests_count} GET objects ({PAGE}-object page) through Flask's test client, "
          f"{per_request:.2f} ms each unprofiled; by {SORT}:")
    stats.sort_stats(SORT).print_stats(int(os.environ.get("BENCH_PROFILE_LINES", "18")))
    print(grouped_table(stats, per_request))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", help="A checkout of earlier code to measure side by side (e.g. /work/main).")
    parser.add_argument("--profile", action="store_true", help="Profile the read path in process instead.")
    parser.add_argument("--write", help="Write the figures and a grouped profile as a section of this file.")
    parser.add_argument("--ablate", action="store_true", help="Measure the server with each part of a request's "
                                                              "own work taken out, then together (see above).")
    parser.add_argument("--spy", action="store_true", help="With --write, also profile the served requests with "
                                                           "py-spy (pip install py-spy): where the time goes.")
    args = parser.parse_args()
    if shutil.which("wrk") is None and not args.profile:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    if args.spy and py_spy() is None:
        raise SystemExit("py-spy is not installed (pip install py-spy)")
    if args.profile:
        profile(3000)
    elif args.ablate:
        ablate(args)
    else:
        measure(args)


if __name__ == "__main__":
    main()
