"""Per-key rate limiting: a fixed one-minute window counted in the store.

The counters live in the store, not in process memory, so the limit holds
across gunicorn workers and hosts. (Flask-Limiter and `limits` keep counters
in memory or in Redis, Memcached or MongoDB; none of those is SQLite.)
"""

from __future__ import annotations

from .auth import Principal
from .errors import TaxiiError
from .storage.base import Store
from .timestamps import now_micros

WINDOW = 60 * 1_000_000


def enforce(store: Store, principal: Principal, requests_per_minute: int | None) -> None:
    """Count this request; 429 with Retry-After once the key's minute is used up."""
    if requests_per_minute is None:
        return
    now = now_micros()
    window = now // WINDOW
    if store.count_request(f"key:{principal.key_id}", window) > requests_per_minute:
        retry_after = -(-((window + 1) * WINDOW - now) // 1_000_000)  # whole seconds, rounded up
        raise TaxiiError(429, "Too many requests",
                         f"This key may make {requests_per_minute} requests a minute; try again in {retry_after} s.",
                         {"Retry-After": str(retry_after)})
