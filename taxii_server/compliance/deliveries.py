"""Deliveries: the first time each operator was sent each object version.

`page_sent` is called once per page served by GET objects, GET object and GET
versions (api/common.py, where pages are serialised); the manifest lists
versions without delivering them. The page's versions go into a buffer in
this process, which a background thread writes to the store within a second
(`FLUSH_INTERVAL`), so the polling path never waits for a write. The buffer
is written on graceful shutdown too; a process that crashes loses what it
buffered in its last second.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from collections.abc import Callable

from flask import current_app, g, request

from ..storage.base import Delivery, Page, Poll, Store
from ..timestamps import now_micros

log = logging.getLogger(__name__)

EXTENSION = "taxii-compliance"
FLUSH_INTERVAL = 1.0  # seconds
# Past this many buffered deliveries the request that adds one writes them itself.
MAX_BUFFERED = 100_000
# Deliveries already written by this process, so that repeated polls buffer nothing again.
MAX_REMEMBERED = 500_000
# The endpoints whose pages send objects (or their versions) to the caller; the manifest only lists them.
DELIVERING_ENDPOINTS = frozenset({"objects.get_objects", "objects.get_object", "versions.get_versions"})

DeliveryKey = tuple[str, str, str, str]  # collection, object, version, operator


def page_sent(page: Page) -> None:
    """Note that the caller was sent `page` of the collection it is reading."""
    collection = g.get("collection_read")
    service = current_app.extensions.get(EXTENSION)  # compliance.service.ComplianceService
    if request.endpoint in DELIVERING_ENDPOINTS and service and collection is not None and collection.track_deliveries:
        service.recorder.record(g.principal.operator.id, collection.id, page, now_micros())


class DeliveryRecorder:
    """A per-process buffer of deliveries and polls, written to the store in batches."""

    def __init__(self, store: Store, on_tick: Callable[[], None] | None = None):
        self._store, self._on_tick = store, on_tick
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._deliveries: dict[DeliveryKey, int] = {}
        self._polls: dict[tuple[str, str], int] = {}
        self._remembered: set[DeliveryKey] = set()
        self._thread_pid: int | None = None
        atexit.register(_flush_if_alive, weakref.ref(self))

    def record(self, operator_id: str, collection_id: str, page: Page, at: int) -> None:
        with self._lock:
            self._polls[(operator_id, collection_id)] = at
            for version in page.records:
                key = (collection_id, version.object_id, version.version, operator_id)
                if key not in self._remembered:
                    self._deliveries.setdefault(key, at)
            full = len(self._deliveries) >= MAX_BUFFERED
            self._start_thread()
        if full:
            self.flush()

    def flush(self) -> None:
        """Write what is buffered; on failure keep it for the next attempt."""
        with self._flushing:
            with self._lock:
                deliveries, polls = self._deliveries, self._polls
                self._deliveries, self._polls = {}, {}
            if not deliveries and not polls:
                return
            try:
                self._store.record_deliveries(
                    [Delivery(c, o, v, op, at) for (c, o, v, op), at in deliveries.items()],
                    [Poll(op, c, at) for (op, c), at in polls.items()])
            except Exception:  # a store that is briefly unavailable must not lose the records
                log.exception("could not write %d delivery records; keeping them for the next attempt",
                              len(deliveries))
                with self._lock:
                    for key, at in deliveries.items():
                        self._deliveries[key] = min(at, self._deliveries.get(key, at))
                    for key, at in polls.items():
                        self._polls[key] = max(at, self._polls.get(key, at))
                return
            with self._lock:
                if len(self._remembered) + len(deliveries) > MAX_REMEMBERED:
                    self._remembered.clear()
                self._remembered.update(deliveries)

    def _start_thread(self) -> None:
        """One flusher per process, started on first use: gunicorn forks workers after
        the application is built, and threads do not survive a fork."""
        if self._thread_pid == os.getpid():
            return
        self._thread_pid = os.getpid()
        threading.Thread(target=_flush_periodically, args=(weakref.ref(self),), name="compliance-flusher",
                         daemon=True).start()

    def tick(self) -> None:
        self.flush()
        if self._on_tick is not None:
            self._on_tick()


def _flush_periodically(recorder_ref: weakref.ref) -> None:
    """Flush every FLUSH_INTERVAL for as long as the recorder (its application) exists."""
    pause = threading.Event()
    while not pause.wait(FLUSH_INTERVAL):
        recorder = recorder_ref()
        if recorder is None:
            return
        try:
            recorder.tick()
        except Exception:
            log.exception("compliance records: background work failed")
        del recorder


def _flush_if_alive(recorder_ref: weakref.ref) -> None:
    recorder = recorder_ref()
    if recorder is not None:
        recorder.flush()
