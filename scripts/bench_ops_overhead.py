"""What the operations hooks cost each request: the request id and request line
(ops/logs.py) and the metrics (ops/metrics.py), each timed alone inside one request
context, for both log formats, and a whole request through the application with and
without them (Flask's test client, no network, the store on SQLite in a temporary folder).

    .venv-test/bin/python scripts/bench_ops_overhead.py
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from pathlib import Path

from flask import Response, g

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from conftest import COMMUNITY, write_config  # noqa: E402
from taxii_server import ops  # noqa: E402
from taxii_server.app import create_app  # noqa: E402
from taxii_server.config import load_settings  # noqa: E402
from taxii_server.keys import issue_key  # noqa: E402
from taxii_server.ops import logs, metrics  # noqa: E402
from taxii_server.storage import open_store  # noqa: E402

CALLS = 20_000
REQUESTS = 400


def per_call(function, calls: int = CALLS) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - started) / calls * 1e6


def quiet_logs(log_format: str) -> None:
    logs.configure_logging(log_format)
    logging.getLogger().handlers[0].stream = open(os.devnull, "w")


def hooks_alone(settings) -> None:
    app = create_app(settings)
    answer = Response(b"{}")
    for log_format in ("text", "json"):
        quiet_logs(log_format)
        with app.test_request_context(f"/api/collections/{COMMUNITY}/objects/?limit=100"):
            g.audit_collection, g.audit_objects = COMMUNITY, 100
            logs._begin()
            metrics._start_clock()
            print(f"{log_format:>5}: request id {per_call(logs._begin):6.1f} us   request line "
                  f"{per_call(lambda: logs._finish(answer)):6.1f} us   metrics {per_call(lambda: metrics._count(answer)):6.1f} us")


def whole_requests(settings) -> None:
    quiet_logs("json")
    store = open_store(settings.storage_url)
    headers = {"Authorization": f"Bearer {issue_key(store, settings.secret, 'northtel').raw_key}",
               "Accept": "application/taxii+json;version=2.1"}
    installed = ops.install
    ops.install = lambda app: None
    bare = create_app(settings, store).test_client()
    ops.install = installed
    with_hooks = create_app(settings, store).test_client()
    for path in ("/taxii2/", f"/api/collections/{COMMUNITY}/objects/"):
        runs = {name: [] for name in ("without", "with")}
        for _ in range(5):  # interleaved, best of five: the machine is shared
            for name, client in (("without", bare), ("with", with_hooks)):
                runs[name].append(per_call(lambda: client.get(path, headers=headers), REQUESTS))
        without, with_ = min(runs["without"]), min(runs["with"])
        print(f"GET {path}: {without:7.1f} us without the hooks, {with_:7.1f} us with them (+{with_ - without:.1f})")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        settings = load_settings(write_config(Path(folder)), environ={})
        hooks_alone(settings)
        whole_requests(settings)
