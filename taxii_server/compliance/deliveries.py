"""Deliveries: the first time each operator was sent each object version.

`page_sent` is called once per page served by GET objects, GET object and GET
versions (api/common.py, where pages are serialised); the manifest lists
versions without delivering them. The page goes into a buffer in this
process, which a background thread writes to the store within a second
(`FLUSH_INTERVAL`), one record per page, so the polling path never waits for
a write and the write costs little. `ComplianceService` later turns those
pages into one record per version (`Store.compact_deliveries`), off the read
path. The buffer is written on graceful shutdown too; a process that crashes
loses what it buffered in its last second.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from collections.abc import Callable

from flask import current_app, g, request

from ..storage.base import DeliveredPage, Page, Poll, Store
from ..timestamps import now_micros

log = logging.getLogger(__name__)

EXTENSION = "taxii-compliance"
FLUSH_INTERVAL = 1.0  # seconds
# Past this many buffered deliveries the request that adds one writes them itself.
MAX_BUFFERED = 100_000
# Deliveries this process has already recorded, so that repeated polls record nothing again.
MAX_REMEMBERED = 500_000
# The endpoints whose pages send objects (or their versions) to the caller; the manifest only lists them.
DELIVERING_ENDPOINTS = frozenset({"objects.get_objects", "objects.get_object", "versions.get_versions"})

DeliveryKey = tuple[str, str, int]  # operator, collection, date_added (which names the version)


def page_sent(page: Page) -> None:
    """Note that the caller was sent `page` of the collection it is reading."""
    collection = g.get("collection_read")
    service = current_app.extensions.get(EXTENSION)  # compliance.service.ComplianceService
    if request.endpoint in DELIVERING_ENDPOINTS and service and collection is not None and collection.track_deliveries:
        service.recorder.record(g.principal.operator.id, collection.id, page, now_micros())


class DeliveryRecorder:
    """A per-process buffer of delivered pages and polls, written to the store in batches."""

    def __init__(self, store: Store, on_tick: Callable[[], None] | None = None):
        self._store, self._on_tick = store, on_tick
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        # Pages as served: (operator, collection, when, (date_added, id, version) of each version).
        # Leaving out what this process recorded before is left to the flush.
        self._served: list[tuple[str, str, int, list[tuple[int, str, str]]]] = []
        self._buffered = 0  # versions in self._served
        self._unwritten: list[DeliveredPage] = []  # made by a flush whose write failed
        self._polls: dict[tuple[str, str], int] = {}
        self._remembered: set[DeliveryKey] = set()
        self._thread_pid: int | None = None
        atexit.register(_flush_if_alive, weakref.ref(self))

    def record(self, operator_id: str, collection_id: str, page: Page, at: int) -> None:
        versions = [(v.date_added, v.object_id, v.version) for v in page.records]  # not the bodies
        with self._lock:
            self._polls[(operator_id, collection_id)] = at
            if versions:
                self._served.append((operator_id, collection_id, at, versions))
                self._buffered += len(versions)
            full = self._buffered >= MAX_BUFFERED
        self.start_thread()
        if full:
            self.flush()

    def flush(self) -> None:
        """Write what is buffered; on failure keep it for the next attempt."""
        with self._flushing:
            with self._lock:
                served, polls = self._served, self._polls
                self._served, self._polls, self._buffered = [], {}, 0
            pages, self._unwritten = self._unwritten + self._new_pages(served), []
            if not pages and not polls:
                return
            try:
                self._store.record_deliveries(pages, [Poll(op, c, at) for (op, c), at in polls.items()])
            except Exception:  # a store that is briefly unavailable must not lose the records
                log.exception("could not write %d delivered pages; keeping them for the next attempt", len(pages))
                self._unwritten = pages
                with self._lock:
                    for key, at in polls.items():
                        self._polls[key] = max(at, self._polls.get(key, at))

    def _new_pages(self, served) -> list[DeliveredPage]:
        """The served pages, less the versions this process has recorded for the operator before."""
        pages = []
        if len(self._remembered) > MAX_REMEMBERED:
            self._remembered.clear()
        for operator_id, collection_id, at, versions in served:
            new = []
            for version in versions:
                key = (operator_id, collection_id, version[0])
                if key not in self._remembered:
                    self._remembered.add(key)
                    new.append(version)
            if new:
                pages.append(DeliveredPage(operator_id, collection_id, at, tuple(new)))
        return pages

    def start_thread(self) -> None:
        """One flusher per process, started on first use: gunicorn forks workers after
        the application is built, and threads do not survive a fork."""
        if self._thread_pid == os.getpid():
            return
        with self._lock:
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
