"""Rate limits: a sustained rate with a burst allowance (GCRA), per API key and,
for failed authentications, per client address.

GCRA keeps one number per bucket, its theoretical arrival time (TAT): each
admitted request moves it `interval` (= one minute / rate) later, and a request
is admitted while the TAT is at most `burst` intervals ahead of now. A key that
has been quiet can make `burst` requests at once (a client's first sync); one
that floods without end is held to `rate` a minute.

The TAT lives in the store so the limit holds across workers and hosts; a
request does not wait for it. Each process admits against its own copy and
pays its admissions to the store in batches (`reconcile`, from the
bookkeeping thread at least every second, and straight away when a bucket has
LOCAL_SLACK unpaid admissions). The store adds every admission it is paid, so
nothing admitted escapes the sustained rate; what the batching can cost is
that a bucket gets about LOCAL_SLACK requests per process past its burst
(LOCAL_SLACK, plus what the process admits while that payment is written)
before every process has heard that it is spent.

(Flask-Limiter and `limits` keep counters in memory, Redis, Memcached or
MongoDB; none of those is SQLite.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from .errors import TaxiiError
from .storage.base import Store
from .timestamps import now_micros

MINUTE = 60 * 1_000_000
# Unpaid admissions of one bucket in one process before it pays at once.
LOCAL_SLACK = 100


@dataclass(frozen=True)
class Rate:
    per_minute: int
    burst: int

    @property
    def interval(self) -> int:
        """Microseconds one request costs."""
        return max(1, MINUTE // self.per_minute)

    @property
    def tolerance(self) -> int:
        """How far ahead of now the TAT may be when a request is admitted."""
        return (self.burst - 1) * self.interval


@dataclass
class _Bucket:
    tat: int = 0          # this process's view: the store's TAT when last paid, plus what it admitted since
    unpaid: int = 0       # admitted here, not yet paid to the store
    unpaid_since: int = 0  # when the first unpaid one was admitted
    paying: int = 0       # handed to the store, not yet confirmed
    known: bool = False   # the store's TAT has been read at least once


class Limiter:
    """One process's accounting of rate-limited buckets against the store."""

    def __init__(self, store: Store, clock: Callable[[], int] = now_micros, slack: int = LOCAL_SLACK,
                 pay_soon: Callable[[], None] | None = None):
        """`pay_soon` asks the bookkeeping thread to pay now; without it, a request
        that reaches the slack pays itself."""
        self._store, self._clock, self._slack, self._pay_soon = store, clock, slack, pay_soon
        self._lock = threading.Lock()
        self._paying = threading.Lock()  # one payment at a time, so each knows what it paid
        self._buckets: dict[str, _Bucket] = {}
        self._rates: dict[str, Rate] = {}

    def admit(self, bucket: str, rate: Rate) -> int | None:
        """Count a request against `bucket`: None when admitted, else the whole
        seconds until one would be (for Retry-After)."""
        if not self._known(bucket):
            self.learn(bucket)
        now = self._clock()
        with self._lock:
            state = self._buckets.setdefault(bucket, _Bucket())
            self._rates[bucket] = rate
            tat = max(state.tat, now)
            if tat - now > rate.tolerance:
                return max(1, -(-(tat - rate.tolerance - now) // 1_000_000))
            state.tat = tat + rate.interval
            if not state.unpaid:
                state.unpaid_since = now
            state.unpaid += 1
            pay_now = state.unpaid >= self._slack
        if pay_now and self._pay_soon is not None:
            self._pay_soon()
        elif pay_now:
            self.reconcile([bucket], wait=False)
        return None

    def _known(self, bucket: str) -> bool:
        with self._lock:
            state = self._buckets.get(bucket)
            return state is not None and state.known

    def learn(self, bucket: str) -> None:
        """Read the bucket's state from the store, paying nothing: a read, never a commit."""
        times = self._store.spend_rate({bucket: (0, 0)}, self._clock())
        with self._lock:
            state = self._buckets.setdefault(bucket, _Bucket())
            rate = self._rates.get(bucket)
            owed = (state.unpaid + state.paying) * rate.interval if rate else 0
            state.tat, state.known = max(state.tat, times[bucket] + owed), True

    def reconcile(self, buckets: list[str] | None = None, wait: bool = True) -> None:
        """Pay what this process admitted to the store and learn what every other one did.
        With `wait=False`, leave it to a payment already under way."""
        if not self._paying.acquire(blocking=wait):
            return
        try:
            self._pay(buckets)
        finally:
            self._paying.release()

    def _pay(self, buckets: list[str] | None) -> None:
        with self._lock:
            spends = {}
            # By default, the buckets this process owes for; it hears of the others' spending when it next pays.
            owing = [name for name, state in self._buckets.items() if state.unpaid]
            for name in owing if buckets is None else buckets:
                state = self._buckets.setdefault(name, _Bucket())
                rate = self._rates.get(name)
                spends[name] = (state.unpaid_since if state.unpaid else 0, state.unpaid * rate.interval if rate else 0)
                state.paying, state.unpaid, state.unpaid_since = state.unpaid, 0, 0
        if not spends:
            return
        now = self._clock()
        try:
            times = self._store.spend_rate(spends, now)
        except Exception:
            with self._lock:  # not paid: owe it again, and try with the next batch
                for name, (since, _) in spends.items():
                    state = self._buckets[name]
                    state.unpaid += state.paying
                    state.unpaid_since = min(filter(None, (state.unpaid_since, since)), default=now)
            raise
        with self._lock:
            for name, tat in times.items():
                state = self._buckets[name]
                rate = self._rates.get(name)
                owed = state.unpaid * rate.interval if rate else 0
                state.tat, state.known, state.paying = tat + owed, True, 0
            # A bucket quiet for a minute is worth nothing here: forget it (the store keeps what matters).
            for name in [n for n, s in self._buckets.items()
                         if n not in times and s.known and not s.unpaid and s.tat < now - MINUTE]:
                del self._buckets[name]


def enforce_key(limiter: Limiter, key_id: str, rate: Rate | None) -> None:
    """Count this request of a key; 429 with Retry-After past its rate and burst."""
    if rate is None:
        return
    wait = limiter.admit(f"key:{key_id}", rate)
    if wait is not None:
        raise too_many(wait, f"This key may make {rate.burst} requests at once and {rate.per_minute} a minute "
                             f"after that; try again in {wait} s.")


def failed_authentication_allowed(limiter: Limiter, client: str, rate: Rate | None) -> int | None:
    """Count a failed authentication from `client`: None while the address is
    within its allowance, else the seconds until it is again."""
    return None if rate is None else limiter.admit(f"address:{client}", rate)


def too_many(wait: int, description: str) -> TaxiiError:
    return TaxiiError(429, "Too many requests", description, {"Retry-After": str(wait)})
