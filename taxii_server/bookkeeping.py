"""Writing the request path's bookkeeping off the request path.

Each process has one bookkeeping thread. At least every FLUSH_SECONDS, and
when the process exits gracefully (a gunicorn worker told to stop, a
restart, the end of `serve`), it writes what requests left behind: audit
records of reads, counted refusals, the rate-limit admissions to pay. A
request therefore never waits for a commit of its own bookkeeping; what a
crash (kill -9, power loss) can lose is what the last flush had not yet
written: at most the last FLUSH_SECONDS of it.

A task may also be run sooner (`run_soon`: a rate-limit bucket owes much).
Only that task runs then; the others keep their interval. Every write here is
a commit, and every commit empties each worker's page cache
(storage/page_cache.py): writing the audit records along with each early
payment made a busy key's polling commit them ten times a second or more.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0


class Bookkeeper:
    """Runs every `flush` task on a daemon thread of each process that served a request."""

    def __init__(self, tasks: list[Callable[[], None]], interval: float = FLUSH_SECONDS):
        self._tasks, self._interval = tasks, interval
        self._lock, self._flushing = threading.Lock(), threading.Lock()
        self._running_in: int | None = None  # the process whose thread this is: gunicorn forks after start-up
        self._stop, self._wake = threading.Event(), threading.Event()
        self._soon: set[Callable[[], None]] = set()  # tasks asked for before the interval is up

    def ensure_running(self) -> None:
        if self._running_in == os.getpid():
            return
        with self._lock:
            if self._running_in == os.getpid():
                return
            self._running_in = os.getpid()
            self._stop, self._wake = threading.Event(), threading.Event()
            # The thread and the exit hook hold the bookkeeper weakly: an application that is
            # gone (a test's, say) takes its thread with it.
            this = weakref.ref(self)
            threading.Thread(target=_keep_flushing, args=(this, self._stop, self._wake, self._interval),
                             name="bookkeeping", daemon=True).start()
            atexit.register(_flush_if_alive, this)

    def run_soon(self, task: Callable[[], None]) -> None:
        """Run `task`, one of this bookkeeper's, now rather than at the end of the interval."""
        with self._lock:
            self._soon.add(task)
        self._wake.set()

    def flush(self) -> None:
        """Write everything pending now; a task that fails keeps its work for the next flush."""
        with self._lock:
            self._soon.clear()
        self._run(self._tasks)

    def run_asked_for(self) -> None:
        """Run the tasks `run_soon` asked for since the last flush."""
        with self._lock:
            asked, self._soon = self._soon, set()
        self._run([task for task in self._tasks if task in asked])

    def _run(self, tasks: list[Callable[[], None]]) -> None:
        with self._flushing:
            for task in tasks:
                try:
                    task()
                except Exception:  # a full disk or a busy store must not stop the thread; say so loudly
                    log.exception("bookkeeping: could not write %s; will try again",
                                  getattr(task, "__qualname__", task))

    def stop(self) -> None:
        """Stop the thread after one last flush (tests, and a server shutting down)."""
        self._stop.set()
        self._wake.set()
        self.flush()


def _keep_flushing(bookkeeper: weakref.ref, stop: threading.Event, wake: threading.Event, interval: float) -> None:
    due = time.monotonic() + interval
    while not stop.is_set():
        wake.wait(max(0.0, due - time.monotonic()))
        wake.clear()
        early = time.monotonic() < due  # woken by run_soon: only what it asked for
        if not early:
            due = time.monotonic() + interval
        if not _if_alive(bookkeeper, Bookkeeper.run_asked_for if early else Bookkeeper.flush):
            return


def _flush_if_alive(bookkeeper: weakref.ref) -> bool:
    return _if_alive(bookkeeper, Bookkeeper.flush)


def _if_alive(bookkeeper: weakref.ref, action: Callable[[Bookkeeper], None]) -> bool:
    alive = bookkeeper()
    if alive is not None:
        action(alive)
    return alive is not None
