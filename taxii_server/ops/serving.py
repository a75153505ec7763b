"""What `taxii-server serve` adds to gunicorn to run as a service: the metrics folder
shared by the workers, the log format, and optionally a metrics listener of its own.

prometheus_client decides when it is first imported whether counts go to files
(PROMETHEUS_MULTIPROC_DIR set) or stay in the process: `prepare_metrics_folder`
must run before anything imports it, that is before the application is built.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeOperations:
    """serve's --log-format and --metrics-bind."""

    log_format: str = "text"
    metrics_bind: tuple[str, int] | None = None

    def prepare(self) -> None:
        """Before the application is built: the metrics folder, and log lines in the chosen format from now on."""
        from .logs import configure_logging

        prepare_metrics_folder()
        configure_logging(self.log_format)

    def hooks(self, app) -> dict:
        return gunicorn_hooks(app, self.metrics_bind)


def prepare_metrics_folder() -> Path | None:
    """The folder where the workers write their counts: the one PROMETHEUS_MULTIPROC_DIR
    names, emptied of a previous run's files, or a new private one removed at exit."""
    if "prometheus_client" in sys.modules and not os.environ.get(MULTIPROCESS_ENV):
        # Too late to switch (serve called inside a process that already built an app):
        # each worker then reports its own counts.
        log.warning("prometheus_client was loaded before serve: metrics are counted per worker")
        return None
    named = os.environ.get(MULTIPROCESS_ENV)
    if named:
        folder = Path(named)
        folder.mkdir(parents=True, exist_ok=True)
        # Counts of a previous run's workers would be added to this run's.
        for stale in folder.glob("*.db"):
            stale.unlink()
    else:
        folder = Path(tempfile.mkdtemp(prefix="taxii-metrics-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        os.environ[MULTIPROCESS_ENV] = str(folder)
    return folder


def parse_bind(text: str) -> tuple[str, int]:
    """`127.0.0.1:9100` or `[::1]:9100` -> (host, port)."""
    host, separator, port = text.rpartition(":")
    if not separator or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def gunicorn_hooks(app, metrics_bind: tuple[str, int] | None) -> dict:
    """gunicorn server hooks: forget a finished worker's live values; serve /metrics from the
    arbiter on `metrics_bind`, when given, without credentials (bind it where only Prometheus reaches)."""
    from prometheus_client import start_http_server

    from .metrics import scrape_registry

    listener = {}

    def when_ready(server):
        if metrics_bind is not None:
            services = app.extensions["taxii"]
            host, port = metrics_bind
            listener["server"], _ = start_http_server(port, host, registry=scrape_registry(
                services.store, services.settings))
            server.log.info("metrics on http://%s:%d/metrics", host, port)

    def post_fork(server, worker):
        if "server" in listener:  # the arbiter's listening socket is of no use in a worker
            listener["server"].socket.close()

    return {"when_ready": when_ready, "post_fork": post_fork, "child_exit": child_exit}


def child_exit(server, worker) -> None:
    """gunicorn's hook when a worker ends: its live gauges stop counting (its counters stay)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
