"""What the sharing rules cost on a write: objects screened per second, side by side.

Times, in one process and one run, the same indicators through validation alone
(what a POST did before the sharing rules), through `screen` into a licensee's
private collection (TLP, skew and identity checks), and through `screen` into
the anonymous community, where each object names its submitter (in
`created_by_ref` only, or in its text too, with its e-mail address and phone
number: the worst case) and is rewritten and validated again. Best of
--repeats runs each, taken in turn.

    .venv-test/bin/python scripts/bench_sharing.py --objects 5000
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

import yaml

from taxii_server.auth import Principal
from taxii_server.config import load_settings
from taxii_server.sharing.identities import identity_of
from taxii_server.sharing.screening import screen
from taxii_server.validation import check_object

REPO = Path(__file__).resolve().parent.parent


def indicators(count: int, creator: str, named: bool = True) -> list[dict]:
    """Indicators created by `creator`; `named`: their text names it too, with its e-mail and phone number."""
    return [{"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}",
             "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
             "created_by_ref": creator, "name": f"Scanner {n}" + (" reported by NorthTel" if named else ""),
             "description": ("Seen by the NorthTel SOC; questions to soc@northtel.example or +44 20 7946 0958."
                             if named else "Seen scanning port 8080 from this address since 2026-01-01."),
             "object_marking_refs": ["marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"],
             "pattern": f"[ipv4-addr:value = '198.51.{n // 256 % 256}.{n % 256}']", "pattern_type": "stix",
             "valid_from": "2026-01-01T00:00:00Z"} for n in range(count)]


def best_times(repeats: int, runs: dict) -> dict[str, float]:
    """The best time of each workload, taking them in turn: a busy machine slows all of them alike."""
    timings = {name: float("inf") for name in runs}
    for _ in range(repeats):
        for name, work in runs.items():
            start = time.perf_counter()
            work()
            timings[name] = min(timings[name], time.perf_counter() - start)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        config = yaml.safe_load((REPO / "config.yaml").read_text())
        config.update(storage="sqlite:///bench.sqlite3", secret_file="server.secret",
                      collections_dir=str(REPO / "collections"), sharing={"scrubbing_rules": str(REPO / "scrubbing.yaml")})
        (Path(folder) / "config.yaml").write_text(yaml.safe_dump(config))
        settings = load_settings(Path(folder) / "config.yaml", environ={})
    northtel = Principal(settings.operators["northtel"], "bench")
    items = indicators(args.objects, identity_of(northtel.operator))
    unnamed = indicators(args.objects, identity_of(northtel.operator), named=False)
    community, reports = settings.collection("community"), settings.collection("northtel-reports")
    runs = {
        "validation only (before)": lambda: [check_object(item) for item in items],
        "screen: licensee's reports": lambda: screen(settings, northtel, reports, items),
        "screen: community, by ref": lambda: screen(settings, northtel, community, unnamed),
        "screen: community, in text": lambda: screen(settings, northtel, community, items),
    }
    timings = best_times(args.repeats, runs)
    base = timings["validation only (before)"]
    print(f"{args.objects} indicators, best of {args.repeats}")
    for name, seconds in timings.items():
        print(f"{name:<30} {args.objects / seconds:>10,.0f} objects/s   x{seconds / base:.2f} the time of validation")


if __name__ == "__main__":
    main()
