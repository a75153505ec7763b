"""Status resources expire: each is deleted `statuses.retention_hours` after its POST.

The purge is one indexed range delete, run by whichever request comes along
(a POST of objects, a GET of a status) at most once a minute per process, so
no scheduler is needed and an idle server does no work.
"""

from __future__ import annotations

import logging
import threading
import weakref

from .storage.base import Store, StoreBusy
from .timestamps import now_micros

PURGE_INTERVAL = 60 * 1_000_000  # microseconds between two purges in one process

_last_purge: weakref.WeakKeyDictionary[Store, int] = weakref.WeakKeyDictionary()
_lock = threading.Lock()
log = logging.getLogger(__name__)


def purge_expired_statuses(store: Store, retention_seconds: int) -> int:
    """Delete the statuses older than the retention period, unless this process
    did so on this store less than a minute ago; return how many were deleted."""
    now = now_micros()
    with _lock:
        if now - _last_purge.get(store, 0) < PURGE_INTERVAL:
            return 0
        _last_purge[store] = now
    try:
        return store.purge_statuses(created_before=now - retention_seconds * 1_000_000)
    except StoreBusy:
        # Run after a write its client is about to be told of: a busy store must not turn
        # that answer into "nothing was changed". The next request tries again.
        with _lock:
            _last_purge.pop(store, None)
        log.info("expired statuses not purged: the store is busy; the next request will try")
        return 0
