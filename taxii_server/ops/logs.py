"""Request ids and the request log: one line per request, as text or as JSON.

Every request gets an id: the caller's `X-Request-ID` when it is a safe token
(bounded, plain characters, not shaped like an API key), otherwise a new one. It is
sent back in the response and carried by every log line written while the request
runs, errors included, so that a client's report, the proxy's log and ours meet.

The request line names the operator and the public key id, never a key: the
Authorization header is never read here except through `presented_key_id`, which
returns the public part only.
"""

from __future__ import annotations

import itertools
import logging
import logging.config
import os
import re
import threading
import time

from flask import Flask, g, has_request_context, request

from ..auth import presented_key_id

REQUEST_ID_HEADER = "X-Request-ID"
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# An API key (tx_<key id>_<secret>) pasted into the header by a misconfigured client must not reach a log.
_KEY_SHAPED = re.compile(r"tx_[0-9a-f]{12}_")
# The fields of a request line, in the order the text format shows them.
REQUEST_FIELDS = ("request_id", "operator", "key_id", "method", "path", "collection", "status", "objects",
                  "duration_ms", "client")
# Probes and scrapes come every few seconds: logged at DEBUG when they succeed.
QUIET_ENDPOINTS = frozenset({"health.live", "health.ready", "metrics.scrape"})

access_log = logging.getLogger("taxii_server.access")


def install(app: Flask) -> None:
    app.before_request(_begin)
    app.after_request(_finish)


def request_id_from(header: str | None) -> str:
    """The caller's request id when it is safe to log and echo; a new one otherwise."""
    if header and _SAFE_REQUEST_ID.fullmatch(header) and not _KEY_SHAPED.search(header):
        return header
    return _new_request_id()


class _RequestIds:
    """Ids unique across processes without asking the system for randomness on every
    request: 48 random bits drawn once per process (again in each forked worker),
    then a counter. 32 hex digits, like a UUID's."""

    def __init__(self) -> None:
        self.reseed()
        os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        self._prefix, self._counter = os.urandom(6).hex(), itertools.count()

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._counter):020x}"


_new_request_id = _RequestIds()


def _begin() -> None:
    g.request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
    g.request_started = time.perf_counter()


def _finish(response):
    state, asked = g._get_current_object(), request._get_current_object()  # once, not through the proxies each time
    request_id = getattr(state, "request_id", None) or request_id_from(None)
    response.headers[REQUEST_ID_HEADER] = request_id
    principal = getattr(state, "principal", None)
    started = getattr(state, "request_started", None)
    fields = {
        "request_id": request_id,
        "operator": principal.operator.id if principal else None,
        "key_id": principal.key_id if principal else presented_key_id(asked.headers.get("Authorization")),
        "method": asked.method,
        "path": asked.full_path.rstrip("?"),
        "collection": getattr(state, "audit_collection", None),
        "status": response.status_code,
        "objects": getattr(state, "audit_objects", 0),
        "duration_ms": round((time.perf_counter() - started) * 1000, 3) if started else None,
        "client": asked.remote_addr or "",
    }
    # The message keeps the shape of gunicorn's access line: client "METHOD path" status.
    access_log.log(_level(response.status_code), '%s "%s %s" %s', fields["client"], fields["method"],
                   fields["path"], fields["status"], extra=fields)
    return response


def _level(status: int) -> int:
    if status >= 500:
        return logging.ERROR
    if request.endpoint in QUIET_ENDPOINTS:
        # A probe that succeeds is routine; one refused (a wrong scrape token) or unready is news.
        return logging.DEBUG if status < 400 else logging.WARNING
    return logging.INFO


# -- formatting -------------------------------------------------------------------------------------

class RequestIdFilter(logging.Filter):
    """Stamp every record written during a request with its id (None outside one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = g.get("request_id") if has_request_context() else None
        return True


_IN_MESSAGE = frozenset({"client", "method", "path", "status"})


class TextFormatter(logging.Formatter):
    """The classic one-line format, followed by the request fields a record carries as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        pairs = [f"{name}={record.__dict__[name]}" for name in REQUEST_FIELDS
                 if record.__dict__.get(name) is not None and name not in _IN_MESSAGE]
        return f"{line} {' '.join(pairs)}" if pairs else line


class BatchedStreamHandler(logging.StreamHandler):
    """A StreamHandler that writes request lines in batches, from a thread of its own.

    Writing a line is a system call, during which the request's thread lets go of the
    interpreter's lock; with gunicorn's threads busy, each time costs the thread a wait
    for its turn. Measured in process on four threads, a GET objects page cost 80 to 130
    us more CPU with a write per request line. Request lines (the access logger's, below
    WARNING) are kept in memory as records, and formatted and written together by the
    writer thread within FLUSH_INTERVAL seconds, or as soon as MAX_PENDING wait:
    formatting a batch in one go costs less than a line at a time between requests
    (served, 32 us less CPU per GET objects page on average over 6 alternating rounds of
    scripts/bench_read_path.py's set-up, less in every round). Any other line is written
    at once, after the request lines before it; so are the waiting lines when the
    process exits (logging's own shutdown flushes every handler). A process killed
    outright loses at most its last FLUSH_INTERVAL of request lines; the audit trail,
    not this log, is the record.
    """

    FLUSH_INTERVAL = 0.2
    MAX_PENDING = 512

    def __init__(self, stream=None):
        super().__init__(stream)
        self._pending: list[logging.LogRecord] = []
        self._wake = threading.Event()
        self._writer_pid: int | None = None

    def emit(self, record: logging.LogRecord) -> None:
        # Called by Handler.handle with self.lock held. Formatted when written: a request
        # line's fields are strings and numbers (see _finish), so later shows them as they were.
        self._pending.append(record)
        if (record.name != access_log.name or record.levelno >= logging.WARNING
                or len(self._pending) > 4 * self.MAX_PENDING):
            self._write_pending()
        elif len(self._pending) >= self.MAX_PENDING:
            self._wake.set()
        if self._writer_pid != os.getpid():  # none yet, or made before a fork: this process needs its own
            self._writer_pid = os.getpid()
            threading.Thread(target=self._keep_writing, name="log writer", daemon=True).start()

    def flush(self) -> None:
        self.acquire()
        try:
            self._write_pending()
        finally:
            self.release()

    def _keep_writing(self) -> None:
        while True:
            self._wake.wait(self.FLUSH_INTERVAL)
            self._wake.clear()
            self.flush()

    def _write_pending(self) -> None:
        records, self._pending = self._pending, []
        lines = []
        for record in records:
            try:
                lines.append(self.format(record) + self.terminator)
            except Exception:
                self.handleError(record)
        try:
            if lines and self.stream is not None:
                self.stream.write("".join(lines))
            super().flush()
        except Exception:  # a closed or broken stream: what logging does with a line it cannot write
            logging.Handler.handleError(self, logging.makeLogRecord({"msg": "log lines lost: stream unwritable"}))


TEXT_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"
JSON_FORMAT = "%(levelname)s %(name)s %(process)d %(message)s"


def logging_config(log_format: str) -> dict:
    """A logging.config.dictConfig for the application and gunicorn alike (gunicorn's
    `logconfig_dict`): one handler on stderr, text or one JSON object a line."""
    _lean_records()
    if log_format == "json":
        # The orjson flavour: a request line costs a third less than with the standard json module.
        formatter = {"()": "pythonjsonlogger.orjson.OrjsonFormatter", "fmt": JSON_FORMAT, "timestamp": "time",
                     "rename_fields": {"levelname": "level", "name": "logger"}}
    elif log_format == "text":
        formatter = {"()": TextFormatter, "fmt": TEXT_FORMAT}
    else:
        raise ValueError(f"unknown log format {log_format!r}: text or json")
    handler = {"class": "taxii_server.ops.logs.BatchedStreamHandler", "stream": "ext://sys.stderr", "formatter": "taxii",
               "filters": ["request_id"]}
    quiet = {"level": "INFO", "handlers": ["stderr"], "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"taxii": formatter},
        "handlers": {"stderr": handler},
        "root": {"level": "INFO", "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": quiet,
            # The request line above replaces gunicorn's access log: it knows the operator and the request id.
            "gunicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False},
        },
    }


def _lean_records() -> None:
    """Leave out of every log record what neither format shows: the calling function
    and line (found by walking the stack) and the thread's and multiprocessing's names.
    The request line is written on every request: 14.0 us a line with them, 12.4 without.
    (The standard library's own advice: the "Optimization" part of the logging HOWTO.)"""
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False


def configure_logging(log_format: str = "text") -> None:
    logging.config.dictConfig(logging_config(log_format))
