"""The compliance service: keeps the records current.

`catch_up` reads what licensees stored in their private collections since it
last looked (a keyset cursor per collection, kept in the store), records
acknowledgements, sightings and false positives, settles recent
acknowledgements against deliveries that were still buffered, and purges
records past the retention period (at most once an hour). It runs before
every report, and within a second of a POST to a private collection on this
process (from the delivery flusher's thread, off the request path). Before
reading, it turns the pages the read path recorded into per-version
deliveries; without reports or POSTs it does that every five minutes.
"""

from __future__ import annotations

import threading

from ..config import Settings
from ..storage.base import Store
from ..timestamps import now_micros
from .acknowledgements import record_acknowledgements, settle_recent
from .deliveries import DeliveryRecorder
from .reading import Exchange
from .sightings import record_false_positives, record_sighting

PURGE_EVERY = 3600 * 1_000_000
# Recorded pages are turned into per-version deliveries before every report and at least this often.
COMPACT_EVERY = 300 * 1_000_000
COMPACT_BATCH = 1000  # pages per transaction
DAY = 86_400 * 1_000_000


class ComplianceService:
    def __init__(self, settings: Settings, store: Store):
        self.exchange = Exchange(settings, store)
        self.recorder = DeliveryRecorder(store, on_tick=self._catch_up_if_written)
        self._catching_up = threading.Lock()
        self._written_lock = threading.Lock()
        self._written: set[str] = set()
        self._last_purge = 0
        self._last_compaction = now_micros()

    @property
    def settings(self) -> Settings:
        return self.exchange.settings

    @property
    def store(self) -> Store:
        return self.exchange.store

    @property
    def retained_since(self) -> int:
        return now_micros() - self.settings.compliance_retention_days * DAY

    def note_write(self, collection_id: str) -> None:
        """A POST stored objects in `collection_id`: catch up within a second if it is a private collection."""
        if collection_id in self.exchange.private_collections:
            with self._written_lock:
                self._written.add(collection_id)
            self.recorder.start_thread()

    def catch_up(self) -> None:
        """Bring every record up to date: the buffer of deliveries, then what licensees reported."""
        self.recorder.flush()
        self._catch_up(list(self.exchange.private_collections))

    def _catch_up_if_written(self) -> None:
        """The background thread's work after each flush."""
        with self._written_lock:
            written, self._written = self._written, set()
        if written:
            self._catch_up(sorted(written))
        elif now_micros() - self._last_compaction >= COMPACT_EVERY:
            with self._catching_up:
                self._compact()

    def _compact(self) -> None:
        self._last_compaction = now_micros()
        while self.store.compact_deliveries(COMPACT_BATCH):
            pass

    def _catch_up(self, collection_ids: list[str]) -> None:
        with self._catching_up:
            self._compact()  # acknowledgements are checked against deliveries
            for collection_id in collection_ids:
                self._read_reports(collection_id)
            now = now_micros()
            settle_recent(self.exchange, now)
            if now - self._last_purge >= PURGE_EVERY:
                self._last_purge = now
                self.store.purge_compliance(self.retained_since)

    def _read_reports(self, collection_id: str) -> None:
        licensee = self.exchange.private_collections[collection_id]
        for page in self.exchange.new_reports(collection_id):
            now = now_micros()
            for reported in page:
                record_acknowledgements(self.exchange, licensee, reported, now)
                record_sighting(self.exchange, licensee, reported)
                record_false_positives(self.exchange, licensee, reported)
