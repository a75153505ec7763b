"""Delivery lag per licensee, for Prometheus, read from the compliance records at each scrape.

`taxii_delivery_lag_seconds{licensee}`: how far behind what was published to it each
licensee's reading is. For each tracked collection published to the licensee (what it
reads and may not write: the advisories), take the newest version it was ever sent
from that collection; the lag is the age of the oldest latest version added after
that one (within the retention period), and 0 when there is none. The largest over
its collections is the licensee's lag. Between two polls a licensee's lag grows from 0
at the pace of the clock, once something new is published; a poll that fetches
everything brings it back to 0. Like a message consumer's lag, it follows where the
licensee's poller has got to: versions it skipped behind that point (a poller that
filters by type, say) are not counted here but in the licensees report's
`undelivered`, which reads every delivery and costs too much for every scrape.

`taxii_delivery_last_poll_timestamp_seconds{licensee}`: when the licensee last read a
page of a collection published to it (0 if never), to alert on one that stopped polling.

Both are read from the store, so any server process answers the same, within the
second it takes each process to write the deliveries it buffered. Their labels are the
configured licensees' ids, nothing a client sends.
"""

from __future__ import annotations

import logging

from prometheus_client.core import GaugeMetricFamily

from ..config import Settings
from ..storage.base import Store
from ..timestamps import now_micros
from . import scope
from .service import DAY

log = logging.getLogger(__name__)
MICROS = 1_000_000


def delivery_lags(settings: Settings, store: Store, now: int) -> dict[str, float]:
    """Seconds of lag per licensee, every licensee named (0 when up to date)."""
    published = published_collections(settings)
    lags = dict.fromkeys(published, 0.0)
    added_since = now - settings.compliance_retention_days * DAY
    for collection in scope.tracked(settings):
        readers = tuple(licensee for licensee, ids in published.items() if collection.id in ids)
        for operator_id, oldest in store.oldest_after_last_delivered(collection.id, readers, added_since).items():
            lags[operator_id] = max(lags[operator_id], max(now - oldest, 0) / MICROS)
    return lags


def last_polls(settings: Settings, store: Store) -> dict[str, float]:
    """Per licensee: the time (seconds since the epoch) of its last page of a collection published to it, or 0."""
    published = published_collections(settings)
    latest = dict.fromkeys(published, 0.0)
    for poll in store.last_polls():
        if poll.collection_id in published.get(poll.operator_id, ()):
            latest[poll.operator_id] = max(latest[poll.operator_id], poll.at / MICROS)
    return latest


_published: tuple[Settings | None, dict[str, frozenset[str]]] = (None, {})


def published_collections(settings: Settings) -> dict[str, frozenset[str]]:
    """Per licensee, the ids of the collections published to it. The configuration does not change
    while the server runs, and deciding it takes some 5,000 policy checks for 50 licensees: the
    answer for the settings asked about last is kept."""
    global _published
    held, published = _published
    if held is not settings:
        published = {op.id: frozenset(c.id for c in scope.published_to(settings, op))
                     for op in scope.licensees(settings)}
        _published = settings, published
    return published


class DeliveryLag:
    """The two gauges, asked of the store at each scrape."""

    def __init__(self, settings: Settings, store: Store):
        self._settings, self._store = settings, store

    def collect(self):
        # As with the store's size: a store that cannot answer leaves these out, not the request counts.
        try:
            lags = delivery_lags(self._settings, self._store, now_micros())
            polls = last_polls(self._settings, self._store)
        except Exception:
            log.warning("metrics: the compliance records did not answer", exc_info=True)
            return
        lag = GaugeMetricFamily("taxii_delivery_lag_seconds", "Age of the oldest version published to the licensee "
                                "after the newest one it was sent; 0 when it has everything.", labels=["licensee"])
        for licensee, seconds in lags.items():
            lag.add_metric([licensee], seconds)
        yield lag
        polled = GaugeMetricFamily("taxii_delivery_last_poll_timestamp_seconds", "When the licensee last read a page "
                                   "of a collection published to it (0: never).", labels=["licensee"])
        for licensee, at in polls.items():
            polled.add_metric([licensee], at)
        yield polled
