"""The phases of scripts/bench's full run that reuse other benchmark scripts' measurements.

- Ingest with the shipped rules on (scripts/bench_ingest.py's set-up: a licensee posts
  TLP:GREEN indicators under its own `created_by_ref` to the anonymous community
  collection, one worker, every object new and fully validated), into a collection
  holding a small and a large number of objects, side by side: two one-worker
  servers run at once and each envelope goes to both in turn, so that whatever
  else the machine does weighs on both alike. Then `taxii-server import` of the
  same kind of bundle into both stores, in alternating rounds, then into both at once.
- `migrate`: `copy_store` (what `taxii-server migrate` runs) of the polling
  phase's stores, the small one and the large one, into fresh SQLite stores.
- The read path: a 100-object page against a bare Flask app serving the same
  bytes under the same gunicorn settings, with wrk (scripts/bench_read_path.py).
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import time
from pathlib import Path

import bench_ingest  # scripts/, this module's own folder
import bench_read_path
import orjson
import requests
from taxii_server.keys import issue_key
from taxii_server.migrate import copy_store, versions_to_copy
from taxii_server.sharing.identities import identity_of
from taxii_server.storage import open_store

TAXII = "application/taxii+json;version=2.1"
# Ids of the objects each measurement sends (bench_ingest.indicator's n): never the same twice in one store.
POST_FIRST = {100: 200_000_000, 1000: 300_000_000}
IMPORT_FIRST = 400_000_000
STAGES_FIRST = 500_000_000


# --------------------------------------------------------------------------------------------
# Ingest with the shipped rules on
# --------------------------------------------------------------------------------------------
class RulesServer:
    """`taxii-server serve --workers 1` on a store with the shipped config's rules, and a licensee's key."""

    def __init__(self, folder: Path, settings, name: str):
        store = open_store(settings.storage_url)
        key = issue_key(store, settings.secret, "northtel", label="benchmark").raw_key
        store.close()
        port = bench_ingest.free_port()
        self.log_path = folder / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            bench_ingest.cli("serve", "--config", str(folder / "config.yaml"), "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "1"),
            stdout=self._log, stderr=subprocess.STDOUT, cwd=folder, env=bench_ingest.child_environment(),
            start_new_session=True)
        self.session = requests.Session()
        self.session.headers.update({"Accept": TAXII, "Content-Type": TAXII, "Authorization": f"Bearer {key}"})
        self.url = f"http://127.0.0.1:{port}/api/collections/{settings.collection('community').id}/objects/"
        self.creator = identity_of(settings.operators["northtel"])
        self._wait(f"http://127.0.0.1:{port}/taxii2/")

    def _wait(self, url: str) -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if self.session.get(url, timeout=60).status_code == 200:
                    return
            except requests.ConnectionError:
                time.sleep(0.2)
        self.stop()
        raise SystemExit(f"the rules server did not start: {self.log_path.read_text(errors='replace')[-2000:]}")

    def post(self, body: bytes, expected: int) -> float:
        """POST one envelope; its wall time in seconds. Every object must be stored."""
        began = time.perf_counter()
        response = self.session.post(self.url, data=body, timeout=600)
        seconds = time.perf_counter() - began
        if response.status_code != 202 or response.json()["success_count"] != expected:
            raise SystemExit(f"POST: HTTP {response.status_code}: {response.text[:300]}")
        return seconds

    def cpu_seconds(self) -> float:
        return bench_ingest.process_cpu(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self._log.close()


def envelopes(creator: str, first: int, count: int, envelope: int) -> list[bytes]:
    return [orjson.dumps({"objects": [bench_ingest.indicator(bench_ingest.POSTED, n, creator)
                                      for n in range(start, min(first + count, start + envelope))]})
            for start in range(first, first + count, envelope)]


def paired_posts(servers: dict[int, RulesServer], count: int, envelope: int) -> dict:
    """The same envelopes to every server, one request to each in turn (the order flips every
    envelope): indicators/s from the sum of each server's request times, and its CPU per object."""
    creator = next(iter(servers.values())).creator
    first = POST_FIRST[envelope]
    for server in servers.values():  # warm-up: imports, caches, the anonymous identity object; not counted
        for body in envelopes(creator, first - envelope, envelope, envelope):
            server.post(body, envelope)
    bodies = envelopes(creator, first, count, envelope)
    seconds = {size: [] for size in servers}
    cpu_before = {size: server.cpu_seconds() for size, server in servers.items()}
    order = list(servers)
    for index, body in enumerate(bodies):
        for size in (order if index % 2 else order[::-1]):
            seconds[size].append(servers[size].post(body, min(envelope, count - index * envelope)))
    result = {}
    for size, server in servers.items():
        cpu = server.cpu_seconds() - cpu_before[size]
        result[size] = {"objects": count, "requests": len(bodies), "seconds": round(sum(seconds[size]), 3),
                        "per_second": round(count / sum(seconds[size])),
                        "request_ms_median": round(statistics.median(seconds[size]) * 1000, 1),
                        "server_cpu_us_per_object": round(cpu / count * 1e6, 1)}
    return result


def rules_stores(sizes: tuple[int, int], work: Path, log) -> dict[int, tuple[Path, object]]:
    """A store with the shipped config per size, its community collection loaded to that size."""
    stores = {}
    for size in sizes:
        folder = work / f"rules-{size}"
        folder.mkdir(parents=True)
        settings = bench_ingest.deployment(folder)
        seconds = bench_ingest.load(settings, settings.collection("community").id, size)
        bench_ingest._checkpoint(folder / "taxii.sqlite3")
        log(f"  community collection loaded with {size:,} objects in {seconds:.1f} s")
        stores[size] = (folder, settings)
    return stores


def phase_rules(profile: dict, work: Path, log, run_in_process) -> dict:
    small, large = profile["rules_sizes"]
    log(f"ingest with the shipped rules: into {small:,} and {large:,}, side by side")
    stores = rules_stores((small, large), work, log)
    results: dict = {"sizes": [small, large], "post": {}, "import": {}}
    servers = {}
    try:
        for size, (folder, settings) in stores.items():
            servers[size] = RulesServer(folder, settings, f"rules-{size}")
        for envelope in (100, 1000):
            figures = paired_posts(servers, profile["rules_objects"], envelope)
            figures["wall_ratio"] = round(figures[large]["per_second"] / figures[small]["per_second"], 3)
            figures["cpu_ratio"] = round(figures[small]["server_cpu_us_per_object"]
                                         / figures[large]["server_cpu_us_per_object"], 3)
            results["post"][envelope] = figures
            log(f"  POST envelopes of {envelope:,}: {figures[small]['per_second']:,}/s into {small:,}, "
                f"{figures[large]['per_second']:,}/s into {large:,} ({figures['wall_ratio']:.2f}x)")
    finally:
        for server in servers.values():
            server.stop()
    results["import"] = alternating_imports(stores, profile["import_objects"], profile["import_rounds"])
    imported = results["import"]
    both = imported["side_by_side"]
    log(f"  taxii-server import: {imported[small]['per_second']:,}/s into {small:,}, "
        f"{imported[large]['per_second']:,}/s into {large:,}; both at once {both[small]['per_second']:,}/s and "
        f"{both[large]['per_second']:,}/s ({imported['wall_ratio']:.2f}x)")
    folder, settings = stores[large]
    results["stages"] = run_in_process(bench_ingest.stage_times, settings, 1000, STAGES_FIRST)
    log(f"  one 1,000-object POST at {large:,}, CPU µs per object by stage: {results['stages']}")
    for folder, _ in stores.values():
        shutil.rmtree(folder, ignore_errors=True)
    return results


def alternating_imports(stores: dict, count: int, rounds: int) -> dict:
    """`taxii-server import` of a bundle of `count` new indicators into each store in turn, `rounds`
    times (the order flips every round): the median indicators/s of each, process start included."""
    runs = {size: [] for size in stores}
    order = list(stores)
    for round_ in range(rounds):
        for size in (order if round_ % 2 else order[::-1]):
            folder, settings = stores[size]
            runs[size].append(bench_ingest.through_import(settings, folder, count, IMPORT_FIRST + round_ * count))
            (folder / f"bundle-{IMPORT_FIRST + round_ * count}.json").unlink()
    small, large = order
    result = {size: {"objects": count, "rounds": rounds,
                     "per_second": round(statistics.median(r["per_second"] for r in outcome)),
                     "every_round": [r["per_second"] for r in outcome],
                     "cpu_s_per_1000": round(statistics.median(r["cpu_s_per_1000"] for r in outcome), 3)}
              for size, outcome in runs.items()}
    result["cpu_ratio"] = round(result[small]["cpu_s_per_1000"] / result[large]["cpu_s_per_1000"], 3)
    result["side_by_side"] = simultaneous_imports(stores, count, IMPORT_FIRST + rounds * count)
    result["wall_ratio"] = result["side_by_side"]["ratio"]
    result["start_seconds"] = import_start_seconds(*stores[large])
    return result


def simultaneous_imports(stores: dict, count: int, first: int) -> dict:
    """`taxii-server import` of the same bundle into each store at the same moment, each in its own
    process: indicators/s side by side, both under the same load from the rest of the machine."""
    folder, settings = next(iter(stores.values()))
    creator = identity_of(settings.operators["northtel"])
    bundle = orjson.dumps({"type": "bundle", "id": "bundle--00000000-0000-4000-8000-000000000003",
                           "objects": [bench_ingest.indicator(bench_ingest.IMPORTED, n, creator)
                                       for n in range(first, first + count)]})
    running, outputs = {}, {}
    for size, (folder, _) in stores.items():
        (folder / "side-by-side-bundle.json").write_bytes(bundle)
        outputs[size] = open(folder / "side-by-side-import.out", "w+")
    began = time.perf_counter()
    for size, (folder, _) in stores.items():
        running[size] = subprocess.Popen(
            bench_ingest.cli("import", str(folder / "side-by-side-bundle.json"), "--collection", "community",
                             "--as", "northtel", "--config", str(folder / "config.yaml")),
            stdout=outputs[size], stderr=subprocess.STDOUT, env=bench_ingest.child_environment(), cwd=folder)
    seconds = {}
    while len(seconds) < len(running):
        for size, process in running.items():
            if size not in seconds and process.poll() is not None:
                seconds[size] = time.perf_counter() - began
        time.sleep(0.01)
    result = {}
    for size, output in outputs.items():
        output.seek(0)
        text = output.read()
        output.close()
        if running[size].returncode != 0 or f"{count} stored" not in text:
            raise SystemExit(f"side-by-side import into {size:,} failed: {text[-2000:]}")
        (stores[size][0] / "side-by-side-bundle.json").unlink()
        result[size] = {"objects": count, "seconds": round(seconds[size], 2), "per_second": round(count / seconds[size])}
    small, large = stores
    result["ratio"] = round(result[large]["per_second"] / result[small]["per_second"], 3)
    return result


def import_start_seconds(folder: Path, settings) -> float:
    """What the import of a one-object bundle takes: the process's start, its imports, opening the store."""
    bundle = folder / "one-object-bundle.json"
    creator = identity_of(settings.operators["northtel"])
    bundle.write_bytes(orjson.dumps({"type": "bundle", "id": "bundle--00000000-0000-4000-8000-000000000002",
                                     "objects": [bench_ingest.indicator(bench_ingest.IMPORTED, IMPORT_FIRST - 1,
                                                                        creator)]}))
    began = time.perf_counter()
    subprocess.run(bench_ingest.cli("import", str(bundle), "--collection", "community", "--as", "northtel",
                                    "--config", str(folder / "config.yaml")),
                   check=True, capture_output=True, env=bench_ingest.child_environment(), cwd=folder)
    return round(time.perf_counter() - began, 2)


# --------------------------------------------------------------------------------------------
# migrate
# --------------------------------------------------------------------------------------------
def copy_once(source_path: Path, destination_path: Path, progress=None) -> dict:
    """copy_store of one SQLite store into a new one: versions copied, wall and CPU seconds."""
    _remove_store(destination_path)
    source, destination = open_store(f"sqlite:///{source_path}"), open_store(f"sqlite:///{destination_path}")
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        report = copy_store(source, destination, progress=progress)
    finally:
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        source.close()
        destination.close()
        _remove_store(destination_path)
    return {"versions": report.versions_copied, "seconds": wall, "cpu_seconds": cpu}


def interleaved_copies(small: Path, large: Path, folder: Path, small_rounds: int) -> dict:
    """Copy the large store; while it copies its last 10% (the destination then already holds
    the other 90%), stop `small_rounds` times to copy the whole small store into a fresh one,
    so that both rates are taken over the same stretch of time on a shared machine."""
    source = open_store(f"sqlite:///{large}")
    total = versions_to_copy(source)
    source.close()
    tail_from = total - total // 10
    every = max(1, (total - tail_from) // small_rounds)
    state = {"done": 0, "wall": time.perf_counter(), "cpu": time.process_time(), "next_small": tail_from}
    tail = {"versions": 0, "seconds": 0.0, "cpu_seconds": 0.0}
    paused = {"seconds": 0.0, "cpu_seconds": 0.0}  # spent on the small copies, not the large one's
    smalls = []

    def progress(done: int) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        if state["done"] >= tail_from:
            tail["versions"] += done
            tail["seconds"] += wall - state["wall"]
            tail["cpu_seconds"] += cpu - state["cpu"]
        state["done"] += done
        if state["done"] >= state["next_small"] and len(smalls) < small_rounds:
            smalls.append(copy_once(small, folder / f"small-{len(smalls)}.sqlite3"))
            state["next_small"] += every
            paused["seconds"] += time.perf_counter() - wall
            paused["cpu_seconds"] += time.process_time() - cpu
        state["wall"], state["cpu"] = time.perf_counter(), time.process_time()

    whole = copy_once(large, folder / "large.sqlite3", progress)
    seconds, cpu = whole["seconds"] - paused["seconds"], whole["cpu_seconds"] - paused["cpu_seconds"]
    rates = [r["versions"] / r["seconds"] for r in smalls]
    return {
        "small": {"versions": smalls[0]["versions"], "per_second": round(statistics.median(rates)),
                  "every_round": [round(rate) for rate in rates],
                  "cpu_us_per_version": round(statistics.median(r["cpu_seconds"] / r["versions"] for r in smalls)
                                              * 1e6, 2)},
        "large": {"versions": whole["versions"], "seconds": round(seconds, 2),
                  "per_second": round(whole["versions"] / seconds),
                  "cpu_us_per_version": round(cpu / whole["versions"] * 1e6, 2),
                  "tail_versions": tail["versions"], "tail_per_second": round(tail["versions"] / tail["seconds"]),
                  "tail_cpu_us_per_version": round(tail["cpu_seconds"] / tail["versions"] * 1e6, 2)},
    }


def phase_migrate(sources: dict[int, Path], work: Path, log, run_in_process, small_rounds: int = 5) -> dict:
    """copy_store of the polling phase's stores (size -> SQLite file), each into a fresh SQLite store."""
    small, large = sorted(sources)
    log(f"migrate: copying the polling phase's store of {large:,} objects into a new SQLite store, and "
        f"{small_rounds} times its copy at {small:,} while the last 10% of that goes")
    folder = work / "migrate"
    folder.mkdir()
    copies = run_in_process(interleaved_copies, sources[small], sources[large], folder, small_rounds)
    at_small, at_large = copies["small"], copies["large"]
    result = {"sizes": [small, large], small: at_small, large: at_large,
              "tail_ratio": round(at_large["tail_per_second"] / at_small["per_second"], 3),
              "cpu_ratio": round(at_small["cpu_us_per_version"] / at_large["tail_cpu_us_per_version"], 3)}
    log(f"  {at_small['per_second']:,} versions/s copying {small:,}; {at_large['per_second']:,}/s copying "
        f"{large:,}, {at_large['tail_per_second']:,}/s over its last {at_large['tail_versions']:,} "
        f"({result['tail_ratio']:.2f}x)")
    shutil.rmtree(folder, ignore_errors=True)
    return result


def _remove_store(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------
# The read path against a bare Flask app
# --------------------------------------------------------------------------------------------
# The same server asked for a different page on each request (bench_read_path.DistinctPages).
DISTINCT_PAGES = "this server, a different page each request"


def phase_read_path(profile: dict, work: Path, log) -> dict:
    """scripts/bench_read_path.py's measurement: rounds alternate between the bare app and this server."""
    rounds, seconds = profile["read_rounds"], profile["read_seconds"]
    if shutil.which("wrk") is None:
        log("read path: wrk is not installed; not measured")
        return {"skipped": "wrk is not installed"}
    log(f"read path: a {bench_read_path.PAGE}-object page, this server and a bare Flask app, "
        f"{rounds} rounds of {seconds} s with wrk")
    folder = work / "read-path"
    targets = bench_read_path.compared_with(bench_read_path.Deployment("this server", folder / "server",
                                                                       bench_read_path.REPO))
    runs = bench_read_path.alternate(targets, rounds, seconds)
    result = {name: {"rps": round(statistics.median(r["rps"] for r in outcome), 1),
                     "p99_ms": round(statistics.median(r["p99_ms"] for r in outcome), 2),
                     "worker_cpu_us_per_request": round(statistics.median(r["cpu_us"] for r in outcome)),
                     "every_round_rps": [r["rps"] for r in outcome]}
              for name, outcome in runs.items()}
    result.update(rounds=rounds, seconds=seconds, gunicorn=" ".join(bench_read_path.GUNICORN),
                  ratio=round(result["this server"]["rps"] / result["bare Flask"]["rps"], 3),
                  distinct_ratio=round(result[DISTINCT_PAGES]["rps"] / result["bare Flask"]["rps"], 3),
                  run_again=bench_read_path.rerun_note(runs))
    log(f"  {result['this server']['rps']:,.0f} requests/s vs {result['bare Flask']['rps']:,.0f} for the bare app "
        f"({result['ratio']:.2f}x); p99 {result['this server']['p99_ms']:.1f} ms vs "
        f"{result['bare Flask']['p99_ms']:.1f} ms")
    shutil.rmtree(folder, ignore_errors=True)
    return result


# --------------------------------------------------------------------------------------------
# Targets and report
# --------------------------------------------------------------------------------------------
FLAT = 0.9  # into the large store >= FLAT x into the small one (issue 16)


def _target(target: str, measured: str, held, margin: str, note: str = "") -> dict:
    return {"target": target, "measured": measured, "held": held, "margin": margin, "note": note}


def _at_least(rate: float, floor: float) -> str:
    return f"{rate / floor:.2f}x the target" + ("" if rate >= floor else f" ({floor / rate:.2f}x short)")


def _flatness(path: str, how: str, small: int, large: int, ratio: float, detail: str) -> dict:
    """The row of a target "into the large store >= FLAT x into the small one" (wall time, measured `how`)."""
    return _target(f"{path}: into {large:,} >= {FLAT}x into {small:,} (wall, {how})", f"{ratio:.2f}x ({detail})",
                   ratio >= FLAT, f"{ratio:.2f}x vs {FLAT}x", _quick_note(large))


def _quick_note(large: int) -> str:
    return "" if large == 1_000_000 else f"--quick: at {large:,} instead of 1,000,000"


def targets(results: dict) -> list[dict]:
    rows = []
    if "rules" in results:
        rules = results["rules"]
        small, large = rules["sizes"]
        for envelope, floor in ((100, 5000), (1000, 8000)):
            figures = rules["post"][envelope]
            rate = figures[large]["per_second"]
            rows.append(_target(f">= {floor:,} indicators/s through POST with the shipped rules on (envelopes of "
                                f"{envelope:,}, one worker) into a collection holding {large:,}",
                                f"{rate:,}/s (into {small:,}: {figures[small]['per_second']:,}/s)", rate >= floor,
                                _at_least(rate, floor), _quick_note(large)))
        walls = {envelope: figures["wall_ratio"] for envelope, figures in rules["post"].items()}
        rows.append(_target(f"POST with the rules: into {large:,} >= {FLAT}x into {small:,} (wall, side by side)",
                            ", ".join(f"envelopes of {e:,}: {r:.2f}x (CPU per object {rules['post'][e]['cpu_ratio']:.2f}x)"
                                      for e, r in walls.items()),
                            min(walls.values()) >= FLAT, f"worst {min(walls.values()):.2f}x vs {FLAT}x",
                            _quick_note(large)))
        imported = rules["import"]
        rate = imported[large]["per_second"]
        rows.append(_target(f">= 8,000 indicators/s through `taxii-server import` with the rules on into {large:,} "
                            f"(bundles of {imported[large]['objects']:,}, process start included)",
                            f"{rate:,}/s (into {small:,}: {imported[small]['per_second']:,}/s)", rate >= 8000,
                            _at_least(rate, 8000),
                            "; ".join(filter(None, (_quick_note(large), f"a one-object import takes "
                                                    f"{imported['start_seconds']:.2f} s")))))
        both = imported["side_by_side"]
        rows.append(_flatness("import", "both imports at once", small, large, imported["wall_ratio"],
                              f"{both[large]['per_second']:,}/s and {both[small]['per_second']:,}/s; "
                              f"CPU per object in the rounds {imported['cpu_ratio']:.2f}x"))
    if "migrate" in results:
        migrate = results["migrate"]
        small, large = migrate["sizes"]
        tail = migrate[large]
        rows.append(_target(f">= 8,000 versions/s through migrate (copy_store) into a store holding {large:,}",
                            f"last {tail['tail_versions']:,} of the copy: {tail['tail_per_second']:,}/s "
                            f"(whole copy: {tail['per_second']:,}/s)", tail["tail_per_second"] >= 8000,
                            _at_least(tail["tail_per_second"], 8000), _quick_note(large)))
        rows.append(_flatness("migrate", "interleaved", small, large, migrate["tail_ratio"],
                              f"{tail['tail_per_second']:,}/s over the last {tail['tail_versions']:,} vs "
                              f"{migrate[small]['per_second']:,}/s copying {small:,}; "
                              f"CPU per version {migrate['cpu_ratio']:.2f}x"))
    if "read_path" in results:
        read = results["read_path"]
        name = "a 100-object page >= 0.6x the requests/s of a bare Flask app serving the same bytes (wrk)"
        if "skipped" in read:
            rows.append(_target(name, "not measured", None, "-", read["skipped"]))
        else:
            ours, bare = read["this server"], read["bare Flask"]
            rows.append(_target(name, f"{ours['rps']:,.0f} vs {bare['rps']:,.0f} requests/s: {read['ratio']:.2f}x; "
                                      f"p99 {ours['p99_ms']:.1f} ms vs {bare['p99_ms']:.1f} ms",
                                read["ratio"] >= 0.6, f"{read['ratio'] / 0.6:.2f}x the target",
                                f"a different page each request (page cache of no use): {read['distinct_ratio']:.2f}x"))
    return rows


def render(results: dict) -> list[str]:
    lines = []
    if "rules" in results:
        rules = results["rules"]
        small, large = rules["sizes"]
        lines += ["### Ingest with the shipped rules on, into a small and a large collection", "",
                  "A licensee posts new TLP:GREEN indicators under its own `created_by_ref` to the anonymous "
                  "community collection (the shipped config: TLP ceilings, anonymisation; its delivery tracking "
                  "records reads of the advisories and licensee collections, not these posts), "
                  f"one worker. POST: two servers side by side, one holding {small:,} and one {large:,}, each "
                  "envelope sent to both in turn; import: alternating rounds, then both stores at once (the wall "
                  "ratio's figures).", "",
                  f"| path | into {small:,} /s | into {large:,} /s | wall ratio | CPU µs/object at {small:,} | "
                  f"CPU µs/object at {large:,} | CPU ratio | median request at {large:,} |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for envelope, figures in rules["post"].items():
            a, b = figures[small], figures[large]
            lines.append(f"| POST, envelopes of {envelope:,} ({a['objects']:,} objects) | {a['per_second']:,} | "
                         f"{b['per_second']:,} | {figures['wall_ratio']:.2f} | {a['server_cpu_us_per_object']} | "
                         f"{b['server_cpu_us_per_object']} | {figures['cpu_ratio']:.2f} | "
                         f"{b['request_ms_median']:.0f} ms |")
        imported = rules["import"]
        a, b = imported[small], imported[large]
        both = imported["side_by_side"]
        lines += [f"| taxii-server import, bundles of {a['objects']:,} (median of {a['rounds']} rounds; process "
                  f"start included) | {a['per_second']:,} | {b['per_second']:,} | - | "
                  f"{a['cpu_s_per_1000'] * 1000:.0f} | {b['cpu_s_per_1000'] * 1000:.0f} | "
                  f"{imported['cpu_ratio']:.2f} | - |",
                  f"| taxii-server import, both at once | {both[small]['per_second']:,} | "
                  f"{both[large]['per_second']:,} | {both['ratio']:.2f} | - | - | - | - |", "",
                  f"An import of a one-object bundle (process start, imports, opening the store) takes "
                  f"{imported['start_seconds']:.2f} s; it is part of every import figure.", "",
                  "CPU: the server process's (or the import process's) CPU time per object; the ratio is the "
                  f"small size's over the large one's (1.0: cost flat in the store's size). Every import round, "
                  f"/s: into {small:,} " + ", ".join(f"{r:,}" for r in a["every_round"]) + f"; into {large:,} "
                  + ", ".join(f"{r:,}" for r in b["every_round"]) + ".", "",
                  f"Where the CPU time of one 1,000-indicator POST goes at {large:,}, microseconds per object "
                  "(each stage timed on its own, best of 3, garbage collection held off; scripts/bench_ingest.py):",
                  "", "| stage | µs per object |", "|---|---:|"]
        lines += [f"| {stage} | {us} |" for stage, us in rules["stages"].items()]
        lines.append("")
    if "migrate" in results:
        migrate = results["migrate"]
        small, large = migrate["sizes"]
        a, b = migrate[small], migrate[large]
        lines += ["### Migrate: copy_store into a fresh SQLite store", "",
                  "The polling phase's stores copied as `taxii-server migrate` copies them (process start not "
                  f"included). The {small:,} copies run while the {large:,} copy goes through its last 10%, "
                  "between two of its batches.", "",
                  "| store copied | versions | versions/s | CPU µs/version |", "|---|---:|---:|---:|",
                  f"| {small:,}, whole (median of {len(a['every_round'])}: "
                  + ", ".join(f"{r:,}" for r in a["every_round"]) + f") | {a['versions']:,} | {a['per_second']:,} | "
                  f"{a['cpu_us_per_version']} |",
                  f"| {large:,}, whole | {b['versions']:,} | {b['per_second']:,} | {b['cpu_us_per_version']} |",
                  f"| {large:,}, its last {b['tail_versions']:,} | {b['tail_versions']:,} | {b['tail_per_second']:,} | "
                  f"{b['tail_cpu_us_per_version']} |", ""]
    if "read_path" in results and "skipped" not in results["read_path"]:
        read = results["read_path"]
        lines += ["### Read path: a 100-object page against a bare Flask app", "",
                  f"GET objects, one 100-object page of 1,000 stored; gunicorn `{read['gunicorn']}` (gthread); "
                  "wrk 2 threads, "
                  f"8 connections, {read['seconds']} s x {read['rounds']} rounds, alternating.", "",
                  "| server | requests/s (median) | p99 ms (median) | x bare Flask | every round, requests/s |",
                  "|---|---:|---:|---:|---|"]
        for name in ("bare Flask", "this server", DISTINCT_PAGES):
            figures = read[name]
            lines.append(f"| {name} | {figures['rps']:,.0f} | {figures['p99_ms']:.1f} | "
                         f"{figures['rps'] / read['bare Flask']['rps']:.2f} | "
                         + ", ".join(f"{r:,.0f}" for r in figures["every_round_rps"]) + " |")
        lines += ["", read.get("run_again", ""), ""]
    return lines


HOW_MEASURED = [
    "- Migrate: `copy_store` (what `taxii-server migrate` runs) of the polling phase's stores, its copy at 10,000 "
    "and its store at the largest size, each into a fresh SQLite store, in a child process, process start not "
    "included. \"Into 1,000,000\" is the rate over the last 10% of the large copy, when the destination already "
    "holds the other 90%; during that stretch the copy stops five times, between two of its batches, to copy "
    "the whole 10,000 store into a fresh one (their median is \"into 10,000\"), so that both rates are taken "
    "under the same load from the rest of the machine. The large copy's rates leave those pauses out.",
    "- Ingest with the shipped rules: scripts/bench_ingest.py's deployment (the shipped config.yaml, its "
    "collections and scrubbing rules; rate limit raised) and objects (a licensee's TLP:GREEN indicators under its "
    "own identity, to the anonymous community collection, every one new, distinct timestamps). Two stores are "
    "loaded through the Store interface to the small and the large size (afresh: the polling phase's store "
    "holds its objects in the advisories collection, not in the community one whose rules are measured here); "
    "a one-worker server runs on each at "
    "once, and every envelope (the same bytes) goes to both, the order flipping each time. Indicators/s is "
    "objects over the sum of that server's request times. The flatness target uses this wall ratio: the "
    "servers run side by side, so other load on the machine weighs on both alike; the servers' CPU per object "
    "is shown beside it (it leaves out time waiting for the disk, which a larger store could also change). "
    "`taxii-server import` of a bundle of 50,000 (a bulk load; 5,000 in --quick) runs as a whole process, "
    "start-up included, into each store in alternating rounds (the indicators/s target), then into both stores "
    "at the same moment, one process each (the flatness target: both under the same load); the report gives "
    "the time of a one-object import beside them. The per-stage CPU profile is scripts/bench_ingest.py's "
    "`stage_times`.",
    "- Read path: scripts/bench_read_path.py's deployments (1,000 indicators, rate limit on but never reached) "
    "and its bare Flask app returning the very same page bytes, both under gunicorn with the same settings, "
    "started afresh for each round, wrk after a 2-second warm-up; rounds alternate between them. The third "
    "row asks the same server for a different page on each request (after a bookmark drawn at random from the "
    "first 900 objects' date_added), so that each connection's page cache (storage/page_cache.py) is of no use.",
]
