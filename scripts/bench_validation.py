#!/usr/bin/env python3
"""Validated STIX indicators per second: stix2 alone vs the fast path.

Generates N indicators (default 5,000) with varied patterns and properties,
then runs `check_object` on each (validation, canonical JSON and hash: the
work POST does per object before storing it), once with stix2 alone and once
with the fast path. Checks that both accept every indicator, and prints
indicators/s for each, counted in CPU time of this one process, so that
other load on the machine does not skew the comparison.

    .venv/bin/python scripts/bench_validation.py [--count 5000] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from taxii_server import fast_validation  # noqa: E402
from taxii_server.validation import Rejected, check_object  # noqa: E402

HASHES = {"MD5": 32, "'SHA-1'": 40, "'SHA-256'": 64}


def hex_digits(rng: random.Random, length: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(length))


def pattern(rng: random.Random, n: int) -> str:
    """One of the shapes a national feed publishes."""
    octets = f"{n % 223 + 1}.{n // 223 % 256}.{n % 97}.{n % 251}"
    algorithm, length = rng.choice(sorted(HASHES.items()))
    shapes = [
        f"[ipv4-addr:value = '{octets}']",
        f"[ipv4-addr:value ISSUBSET '{octets}/24']",
        f"[domain-name:value = 'host{n}.example.net']",
        f"[url:value = 'https://host{n}.example.net/path/{n}?q=1']",
        f"[file:hashes.{algorithm} = '{hex_digits(rng, length)}']",
        f"[file:name = 'invoice_{n}.pdf.exe' AND file:size > {n % 5000 + 1000}]",
        f"[file:hashes.MD5 = '{hex_digits(rng, 32)}' OR file:hashes.'SHA-256' = '{hex_digits(rng, 64)}']",
        f"[email-addr:value = 'user{n}@example.org'] AND [domain-name:value LIKE '%.example.org']",
        (f"[network-traffic:dst_ref.value = '{octets}' AND network-traffic:dst_port = {n % 65535}] "
         f"FOLLOWEDBY [url:value MATCHES '^https?://host{n}\\\\.'] WITHIN 600 SECONDS"),
        ("[process:command_line LIKE '%-enc%'] REPEATS 3 TIMES "
         "START t'2026-01-01T00:00:00Z' STOP t'2026-12-31T23:59:59.999Z'"),
    ]
    return shapes[n % len(shapes)]


def indicators(count: int, seed: int = 4) -> list[dict]:
    rng = random.Random(seed)
    result = []
    for n in range(count):
        item = {
            "type": "indicator",
            "spec_version": "2.1",
            "id": f"indicator--{uuid.UUID(int=rng.getrandbits(128), version=4)}",
            "created": "2026-03-01T08:00:00.000Z",
            "modified": f"2026-03-0{1 + n % 9}T08:00:00.{n % 1000:03d}Z",
            "name": f"Indicator {n}",
            "indicator_types": [rng.choice(["malicious-activity", "anomalous-activity", "compromised"])],
            "pattern": pattern(rng, n),
            "pattern_type": "stix",
            "pattern_version": "2.1",
            "valid_from": "2026-03-01T08:00:00Z",
            "created_by_ref": "identity--f431f809-377b-45e0-aa1c-6a4751cae5ff",
            "object_marking_refs": ["marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"],
            "confidence": rng.randrange(101),
            "labels": ["national-feed"],
        }
        if n % 3 == 0:
            item["valid_until"] = "2026-09-01T00:00:00Z"
        if n % 4 == 0:
            item["kill_chain_phases"] = [{"kill_chain_name": "lockheed-martin-cyber-kill-chain", "phase_name": "delivery"}]
        if n % 5 == 0:
            item["external_references"] = [{"source_name": "national-cert", "external_id": f"NC-{n}",
                                            "url": f"https://cert.example/advisories/{n}"}]
        result.append(item)
    return result


def rate(items: list[dict], fast: bool, repeat: int) -> float:
    """Best indicators per CPU second over `repeat` runs."""
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        results = [check_object(item, fast=fast) for item in items]
        best = min(best, time.process_time() - started)
        rejected = [result for result in results if isinstance(result, Rejected)]
        if rejected:
            raise SystemExit(f"a generated indicator was rejected: {rejected[0]}")
    return len(items) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000, help="indicators to validate (default 5000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per path; the best counts (default 3)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    items = indicators(args.count)
    proven = sum(fast_validation.proves_valid(item) for item in items)
    figures = {
        "indicators": args.count,
        "proven_by_fast_path": proven,
        "stix2_per_second": rate(items, fast=False, repeat=max(1, args.repeat - 1)),
        "fast_per_second": rate(items, fast=True, repeat=args.repeat),
    }
    figures["speedup"] = figures["fast_per_second"] / figures["stix2_per_second"]
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"{args.count} indicators, {proven} proven valid by the fast path (the rest went to stix2)")
    print(f"{'path':<12}{'indicators/s':>14}{'µs each':>10}")
    for name, key in (("stix2", "stix2_per_second"), ("fast path", "fast_per_second")):
        print(f"{name:<12}{figures[key]:>14,.0f}{1e6 / figures[key]:>10.1f}")
    print(f"speed-up: {figures['speedup']:.1f}x")


if __name__ == "__main__":
    main()
