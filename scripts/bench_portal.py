#!/usr/bin/env python3
"""Server time of each portal page with a large store.

Loads N objects (default 1,000,000) into the advisories collection of a fresh
SQLite store through the Store interface (pre-built versions, as scripts/bench
loads them; a sample is checked against validation.check_object): indicators
with a mix of TLP markings, and one advisory report every 1,000 objects that
lists the ten indicators before it; and 30 objects into each licensee's private
collection (200 licensees by default). Then it signs in through the sign-in form
and times every page in this process through the WSGI application (Flask's
test client, no network): what the server itself spends on a page.

    .venv-test/bin/python scripts/bench_portal.py [--objects 1000000] [--licensees 200] [--repeat 20]
                                                  [--markdown FILE]

With --markdown the table is also written into FILE between the portal
benchmark's markers (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import hashlib
import re
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from taxii_server.app import create_app  # noqa: E402
from taxii_server.config import load_settings  # noqa: E402
from taxii_server.keys import issue_key  # noqa: E402
from taxii_server.portal.stix_view import TLP2  # noqa: E402
from taxii_server.storage import open_store  # noqa: E402
from taxii_server.storage.base import NewVersion  # noqa: E402
from taxii_server.timestamps import parse_timestamp  # noqa: E402
from taxii_server.validation import check_object  # noqa: E402

STAMP = "2026-06-01T00:00:00.000Z"
TLPS = [TLP2["clear"], TLP2["green"], TLP2["amber"], None]
REPORT_EVERY, BATCH = 1000, 20_000
PRIVATE_OBJECTS = 30
TARGET_MS = 100
START, END = "<!-- portal-benchmark:start -->", "<!-- portal-benchmark:end -->"
TOKEN = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def object_id(type_: str, n: int) -> str:
    return f"{type_}--{uuid.UUID(int=n + 1, version=4)}"


def stix_object(n: int) -> dict:
    if n % REPORT_EVERY == REPORT_EVERY - 1:
        return {"type": "report", "spec_version": "2.1", "id": object_id("report", n), "created": STAMP,
                "modified": STAMP, "name": f"Advisory {n // REPORT_EVERY}: phishing wave", "published": STAMP,
                "report_types": ["threat-report"],
                "object_refs": [object_id("indicator", m) for m in range(n - 10, n)]}
    obj = {"type": "indicator", "spec_version": "2.1", "id": object_id("indicator", n), "created": STAMP,
           "modified": STAMP, "name": f"Botnet controller {n}",
           "description": "Benchmark indicator shared by the regulator's CERT.",
           "indicator_types": ["malicious-activity"],
           "pattern": f"[ipv4-addr:value = '10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}']",
           "pattern_type": "stix", "valid_from": "2026-06-01T00:00:00Z"}
    marking = TLPS[n % len(TLPS)]
    if marking:
        obj["object_marking_refs"] = [marking]
    return obj


def new_version(n: int) -> NewVersion:
    """What check_object(stix_object(n)) returns, without the STIX parsing."""
    item = stix_object(n)
    body = orjson.dumps(item, option=orjson.OPT_SORT_KEYS)
    return NewVersion(object_id=item["id"], type=item["type"], version=STAMP, version_key=parse_timestamp(STAMP),
                      spec_version="2.1", content_hash=hashlib.sha256(body).digest(), body=body)


def check_prebuilt_versions() -> None:
    for n in (0, 1, 2, 3, REPORT_EVERY - 1, 123_457):
        if check_object(stix_object(n)) != new_version(n):
            raise SystemExit(f"the pre-built version of object {n} differs from check_object's")


def prepare(folder: Path, count: int, licensees: int):
    config = {"title": "portal benchmark", "storage": "sqlite:///taxii.sqlite3", "secret_file": "server.secret",
              "collections_dir": str(REPO / "collections"), "api_root": {"path": "api", "title": "bench"},
              "portal": {"sign_ins_per_minute": 1000},
              "operators": [{"id": "regulator", "role": "regulator", "name": "Regulator CERT"},
                            {"id": "northtel", "role": "licensee", "name": "NorthTel"},
                            *({"id": f"licensee-{n:03d}", "role": "licensee"} for n in range(licensees - 1))]}
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    settings = load_settings(path, environ={})
    store = open_store(settings.storage_url)
    collection = settings.collection("advisories").id
    started = time.perf_counter()
    for start in range(0, count, BATCH):
        store.add_versions(collection, [new_version(n) for n in range(start, min(start + BATCH, count))])
    for licensee in settings.operators.values():  # a few reports in every private collection
        if licensee.role == "licensee":
            store.add_versions(settings.collection(f"{licensee.id}-reports").id,
                               [new_version(n) for n in range(PRIVATE_OBJECTS)])
    print(f"loaded {count:,} objects in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return settings, store


class Visitor:
    """One signed-in operator on the WSGI application."""

    def __init__(self, app, store, settings, operator: str):
        self.client = app.test_client()
        key = issue_key(store, settings.secret, operator).raw_key
        self.token = TOKEN.search(self.client.get("/portal/sign-in").text).group(1)
        answer = self.client.post("/portal/sign-in", data={"csrf_token": self.token, "operator": operator, "key": key})
        if answer.status_code != 302:
            raise SystemExit(f"sign-in as {operator} failed: {answer.status_code}")

    def time(self, method: str, url: str, repeat: int, data=None, expect=(200,)) -> list[float]:
        timings = []
        for _ in range(repeat):
            started = time.perf_counter()
            answer = self.client.open(url, method=method, data=data)
            timings.append((time.perf_counter() - started) * 1000)
            if answer.status_code not in expect:
                raise SystemExit(f"{method} {url}: {answer.status_code}\n{answer.text[:500]}")
        return timings


def pages(count: int) -> list[tuple[str, str, str, str, dict | None, tuple]]:
    """(page, who, method, url, form data, accepted statuses)."""
    middle = count // 2
    report = object_id("report", (middle // REPORT_EVERY) * REPORT_EVERY + REPORT_EVERY - 1)
    adv = "/portal/collections/advisories"
    return [
        ("sign-in form", "anonymous", "GET", "/portal/sign-in", None, (200,)),
        ("home (regulator: every collection, NEWS_LICENSEES licensees)", "regulator", "GET", "/portal/", None, (200,)),
        ("home (licensee)", "northtel", "GET", "/portal/", None, (200,)),
        ("collection, newest page", "northtel", "GET", f"{adv}/", None, (200,)),
        ("collection, a page in the middle", "northtel", "GET", f"{adv}/?before=MIDDLE", None, (200,)),
        ("filter type=report (1 in 1,000)", "northtel", "GET", f"{adv}/?type=report", None, (200,)),
        ("filter TLP:AMBER (1 in 4)", "northtel", "GET", f"{adv}/?tlp=amber", None, (200,)),
        ("filter text, no match (scan budget)", "northtel", "GET", f"{adv}/?q=no-such-text", None, (200,)),
        ("filter text + type + TLP + date range", "northtel", "GET",
         f"{adv}/?type=indicator&tlp=green&q=controller&from=2000-01-01&until=2100-01-01", None, (200,)),
        ("object page (report, 10 related)", "northtel", "GET", f"{adv}/objects/{report}/", None, (200,)),
        ("object page (indicator)", "northtel", "GET", f"{adv}/objects/{object_id('indicator', middle)}/", None,
         (200,)),
        ("download CSV (1,000 objects)", "northtel", "GET", f"{adv}/export.csv", None, (200,)),
        ("download STIX bundle (1,000 objects)", "northtel", "GET", f"{adv}/export.json", None, (200,)),
        ("download CSV, text with no match (scans 10,000)", "northtel", "GET", f"{adv}/export.csv?q=no-such-text",
         None, (200,)),
        ("publish form", "regulator", "GET", "/portal/publish", None, (200,)),
        ("publish an advisory (5 indicators)", "regulator", "POST", "/portal/publish", "ADVISORY", (302,)),
        ("report a finding (3 indicators)", "northtel", "POST", "/portal/report", "FINDING", (302,)),
        ("acknowledge an advisory", "northtel", "POST", f"{adv}/objects/{report}/acknowledge", "ACK", (302,)),
        ("compliance matrix (regulator)", "regulator", "GET", "/portal/compliance", None, (200,)),
        ("inbox (regulator, NEWS_LICENSEES private collections)", "regulator", "GET", "/portal/inbox", None, (200,)),
        ("republish from the inbox", "regulator", "POST", "/portal/inbox/republish", "REPUBLISH", (302,)),
        ("sightings per indicator (regulator)", "regulator", "GET", "/portal/sightings", None, (200,)),
        ("feed report (regulator)", "regulator", "GET", "/portal/feed-report", None, (200,)),
    ]


def deliver_newest(app, store, settings, operator: str) -> None:
    """A licensee polls the newest advisories over TAXII: deliveries for the compliance matrix."""
    key = issue_key(store, settings.secret, operator).raw_key
    answer = app.test_client().get(f"/api/collections/{settings.collection('advisories').id}/objects/?limit=100",
                                   headers={"Authorization": f"Bearer {key}",
                                            "Accept": "application/taxii+json;version=2.1"})
    if answer.status_code != 200:
        raise SystemExit(f"{operator}'s poll failed: {answer.status_code}")


def form(kind: str, visitor: Visitor, settings) -> dict:
    if kind == "ACK":
        return {"csrf_token": visitor.token}
    if kind == "REPUBLISH":
        return {"csrf_token": visitor.token, "object_id": object_id("indicator", 0),
                "source": settings.collection("northtel-reports").id, "target": settings.collection("advisories").id}
    if kind == "ADVISORY":
        return {"csrf_token": visitor.token, "destination": settings.collection("advisories").id,
                "name": "Benchmark advisory", "kind": "domain", "tlp": "green", "description": "",
                "values": "\n".join(f"bench-{i}.example" for i in range(5))}
    return {"csrf_token": visitor.token, "destination": settings.collection("northtel-reports").id,
            "name": "Benchmark finding", "kind": "ipv4", "tlp": "amber", "description": "",
            "values": "192.0.2.1\n192.0.2.2\n192.0.2.3"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--licensees", type=int, default=200,
                        help="licensees in config.yaml, each with its private collection (the regulator's home reads all)")
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--only", default="",
                        help="time only the pages whose name contains one of these comma-separated texts")
    args = parser.parse_args()
    check_prebuilt_versions()
    with tempfile.TemporaryDirectory(prefix="bench-portal-") as folder:
        settings, store = prepare(Path(folder), args.objects, args.licensees)
        app = create_app(settings, store)
        visitors = {op: Visitor(app, store, settings, op) for op in ("regulator", "northtel")}
        visitors["anonymous"] = type("Anonymous", (Visitor,), {"__init__": lambda self: None})()
        visitors["anonymous"].client = app.test_client()
        collection = settings.collection("advisories").id
        middle = store.recent_versions(collection, limit=1, before=None)[0].date_added
        first = store.export_versions(collection, None, 1)[0].date_added
        rows = []
        deliver_newest(app, store, settings, "northtel")
        for page, who, method, url, data, expect in pages(args.objects):
            if not any(part in page for part in args.only.split(",")):
                continue
            url = url.replace("MIDDLE", str((first + middle) // 2))
            page = page.replace("NEWS_LICENSEES", str(args.licensees))
            visitor = visitors[who]
            data = form(data, visitor, settings) if data else None
            visitor.time(method, url, 2, data, expect)  # warm-up
            timings = visitor.time(method, url, args.repeat, data, expect)
            rows.append((page, statistics.median(timings), sorted(timings)[int(len(timings) * 0.95) - 1]))
            print(f"{page:45} median {rows[-1][1]:7.1f} ms   p95 {rows[-1][2]:7.1f} ms", file=sys.stderr)
        store.close()
    table = report(rows, args)
    print(table)
    if args.markdown:
        write_section(args.markdown, table)


def report(rows, args) -> str:
    lines = [f"Server time per page with {args.objects:,} objects in the advisories collection and "
             f"{args.licensees} licensees (SQLite; "
             f"{args.repeat} requests each after 2 warm-up requests, in-process through the WSGI application; "
             f"target {TARGET_MS} ms):", "",
             "| page | median ms | p95 ms | under target |", "|---|---:|---:|---|"]
    for page, median, p95 in rows:
        lines.append(f"| {page} | {median:.1f} | {p95:.1f} | {'yes' if p95 < TARGET_MS else 'NO'} |")
    return "\n".join(lines)


def write_section(path: Path, table: str) -> None:
    text = path.read_text() if path.exists() else ""
    section = f"{START}\n{table}\n{END}"
    if START in text and END in text:
        text = text[:text.index(START)] + section + text[text.index(END) + len(END):]
    else:
        # The outer markers keep the section when scripts/bench rewrites the file (its kept_sections).
        text = (text.rstrip("\n") + "\n\n<!-- bench_portal: begin -->\n## Portal\n\n" + section
                + "\n<!-- bench_portal: end -->\n")
    path.write_text(text)


if __name__ == "__main__":
    main()
