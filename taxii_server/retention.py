"""Status resources expire: each is deleted `statuses.retention_hours` after its POST.

The purge is one indexed range delete, run by whichever request comes along
(a POST of objects, a GET of a status) at most once a minute per process, so
no scheduler is needed and an idle server does no work.
"""

from __future__ import annotations

import threading
import weakref

from .storage.base import Store
from .timestamps import now_micros

PURGE_INTERVAL = 60 * 1_000_000  # microseconds between two purges in one process

_last_purge: weakref.WeakKeyDictionary[Store, int] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def purge_expired_statuses(store: Store, retention_seconds: int) -> int:
    """Delete the statuses older than the retention period, unless this process
    did so on this store less than a minute ago; return how many were deleted."""
    now = now_micros()
    with _lock:
        if now - _last_purge.get(store, 0) < PURGE_INTERVAL:
            return 0
        _last_purge[store] = now
    return store.purge_statuses(created_before=now - retention_seconds * 1_000_000)
