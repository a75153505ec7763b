"""The storage interface: what every backend (SQLite, MongoDB, ...) provides.

Storage speaks in collections, object versions, pages, statuses and key
records. It knows nothing of HTTP, of operators' rights or of TAXII text
formats: timestamps are integer microseconds, bodies are JSON bytes.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import orjson


@dataclass(frozen=True)
class VersionFilter:
    """`match[version]`: any mix of first, last and exact versions, or all."""

    all: bool = False
    first: bool = False
    last: bool = False
    exact: tuple[int, ...] = ()

    @classmethod
    def latest(cls) -> "VersionFilter":
        return cls(last=True)

    @classmethod
    def every(cls) -> "VersionFilter":
        return cls(all=True)


@dataclass(frozen=True)
class ObjectQuery:
    """One page request over the versions stored in a collection.

    Results are ordered by `date_added`, which is unique within a collection,
    so `after_position` (the last `date_added` already seen) is a complete
    keyset cursor.
    """

    collection_id: str
    limit: int
    object_id: str | None = None
    ids: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    versions: VersionFilter = field(default_factory=VersionFilter.latest)
    # Empty means "the latest spec version of each object" (§3.4.1).
    spec_versions: tuple[str, ...] = ()
    added_after: int | None = None
    after_position: int | None = None
    with_body: bool = True
    # The page ends before its bodies would pass this many bytes; a larger body comes alone.
    max_bytes: int | None = None


# Not frozen: a page makes a hundred of these per request, and a frozen
# dataclass is made five times slower (each field through object.__setattr__).
# Read-only all the same: the SQLite backend hands the same ones to every
# request that reads the same page (storage/page_cache.py).
@dataclass(slots=True)
class StoredVersion:
    object_id: str
    type: str
    version: str
    spec_version: str
    date_added: int
    body: bytes | None = None


@dataclass(frozen=True)
class Page:
    records: list[StoredVersion]
    more: bool


def take_page(records: Iterable[StoredVersion], query: ObjectQuery) -> Page:
    """The page `query` asks for, from the matching records in `date_added`
    order (read lazily: reading stops at the first record left out)."""
    taken: list[StoredVersion] = []
    size = 0
    for record in records:
        if len(taken) == query.limit:
            return Page(taken, more=True)
        if query.max_bytes is not None and record.body is not None:
            size += len(record.body) + 1  # and a comma
            if taken and size > query.max_bytes:
                return Page(taken, more=True)
        taken.append(record)
    return Page(taken, more=False)


@dataclass(frozen=True)
class NewVersion:
    """A validated object ready to store. `version_key` is None when the
    object has neither `modified` nor `created`: the store then versions it by
    its `date_added`."""

    object_id: str
    type: str
    version: str | None
    version_key: int | None
    spec_version: str
    content_hash: bytes
    body: bytes


@dataclass(frozen=True)
class VersionRecord:
    """A stored version with everything a backend keeps of it: what `migrate`
    copies from one store to another, `date_added` included."""

    object_id: str
    type: str
    version: str
    version_key: int
    spec_version: str
    date_added: int
    content_hash: bytes
    body: bytes
    # Who stored it (see Submission); None for versions stored before submitters were recorded.
    submitter: str | None = None
    submitter_key: str | None = None
    derived_from: str | None = None


@dataclass(frozen=True)
class Submission:
    """Who is storing versions: the operator and the key id it used (the CLI's
    administrators name an operator and a key id of "cli").

    With a submission the store records both on every version it stores, and
    accepts a new version of an object only from the operator that stored the
    object's first version in that collection (its owner). `derived_from`
    names the version a republished object was made from
    ("<collection id>/<object id>/<version>"), for provenance."""

    operator_id: str
    key_id: str
    derived_from: str | None = None


class StoreConflict(Exception):
    """Copied data clashes with what the destination already holds."""


@dataclass(frozen=True)
class AddOutcome:
    object_id: str
    version: str
    stored: bool          # False for an exact duplicate, which is still a success
    conflict: str | None = None  # set when the object was refused


@dataclass(frozen=True)
class StatusRecord:
    """A TAXII status resource as stored: visible to `owner` only."""

    id: str
    owner: str
    created: int
    body: bytes


StatusMaker = Callable[[list[AddOutcome]], StatusRecord]


@dataclass
class ApiKeyRecord:
    key_id: str
    operator_id: str
    secret_hash: str
    created: int
    expires: int | None = None
    revoked: int | None = None
    last_used: int | None = None
    label: str = ""


@dataclass(frozen=True)
class AuditEvent:
    """One request as the audit trail keeps it. `operator_id` is None when
    authentication failed; `key_id` is then the public id the caller presented, if any."""

    at: int
    method: str
    path: str
    status: int
    client: str
    operator_id: str | None = None
    key_id: str | None = None
    collection_id: str | None = None
    objects: int = 0
    # Refused and anonymous requests are kept as one row per client, key, status and
    # minute (`record_audit_counts`): `count` says how many it stands for, `at` the first.
    count: int = 1


# Makes the audit record of a write from its outcome, inside the write's own transaction.
AuditMaker = Callable[[list["AddOutcome"]], AuditEvent]


class StoreBusy(Exception):
    """The store could not take a write in time (another holds its lock); try again shortly."""


@dataclass(frozen=True)
class ClientCertRecord:
    """A client certificate registered for mutual TLS: whoever presents the
    certificate with this fingerprint is `operator_id`."""

    fingerprint: str          # SHA-256 of the DER certificate, 64 lowercase hex digits
    operator_id: str
    subject: str              # the certificate's subject, for people reading the list
    created: int
    expires: int | None = None  # the certificate's own notAfter
    revoked: int | None = None
    label: str = ""


# -- compliance records (taxii_server/compliance) ------------------------------------

class Delivery(NamedTuple):
    """The first time `operator_id` was sent one version of an object (and, once
    known, the first acknowledgement of that object it sent after receiving it).
    The version is the one stored at `date_added` in the collection. A tuple rather
    than a dataclass: one is made for every object version on every page served."""

    operator_id: str
    collection_id: str
    date_added: int
    object_id: str
    version: str
    delivered_at: int
    acknowledged_at: int | None = None


class DeliveredPage(NamedTuple):
    """The versions one page sent to an operator, as the read path records it: one
    record per page, cheap to write; `compact_deliveries` turns it into Deliveries."""

    operator_id: str
    collection_id: str
    delivered_at: int
    versions: tuple[tuple[int, str, str], ...]  # (date_added, object id, version) of each


def newest_sent(pages: Iterable[tuple[str, bytes]], operator_ids: tuple[str, ...]) -> dict[str, int]:
    """Per operator: the newest `date_added` in recorded pages, given as (operator, the page's
    `versions` as stored: JSON [[date_added, id, version], ...])."""
    wanted, newest = frozenset(operator_ids), {}
    for operator_id, versions in pages:
        if operator_id in wanted:
            page_newest = max(orjson.loads(versions), default=(0,))[0]  # lists compare by date_added first
            newest[operator_id] = max(page_newest, newest.get(operator_id, page_newest))
    return newest


@dataclass(frozen=True)
class Poll:
    """`operator_id` read a page of `collection_id` at `at`."""

    operator_id: str
    collection_id: str
    at: int


@dataclass(frozen=True)
class Acknowledgement:
    """An opinion or note from `operator_id` naming `object_id`, received at `acked_at`.

    `status` is `acknowledged`, `not-delivered` (the operator had not been sent the
    object when it acknowledged it) or `not-readable` (it may not read the object, or
    the exchange holds none with that id). `settled` turns true once no delivery made
    before `acked_at` can still be waiting in a server process's buffer."""

    operator_id: str
    object_id: str
    ack_id: str
    ack_version: str
    collection_id: str
    acked_at: int
    value: str
    status: str
    settled: bool = False


@dataclass(frozen=True)
class SightingRecord:
    """The latest version of one `sighting` a licensee reported."""

    operator_id: str
    sighting_id: str
    version: str
    version_key: int  # `version` in microseconds, to tell which of two versions is later
    indicator_id: str
    count: int
    first_seen: int
    last_seen: int
    received_at: int


@dataclass(frozen=True)
class FalsePositive:
    """A licensee's opinion disagreeing with an indicator."""

    operator_id: str
    opinion_id: str
    indicator_id: str
    value: str
    reported_at: int


@dataclass(frozen=True)
class DeliveryCount:
    """How many operators received one object version, and how many of them acknowledged it."""

    collection_id: str
    date_added: int
    object_id: str
    version: str
    delivered: int
    acknowledged: int
    first_delivered: int
# -- feeds: plain lists for firewalls and resolvers (taxii_server/feeds) ----------

# `valid_until` of an indicator that names none: later than any moment the server will see.
FOREVER = 2 ** 62


class FeedEntry(NamedTuple):
    """One value of one indicator's latest version, as a feed lists it. `held`
    says why it is never published (a safety rule, an invalid value); None when it may be.
    A named tuple: a feed request makes one per entry, hundreds of thousands at a time."""

    kind: str
    value: str
    indicator_id: str
    date_added: int
    valid_from: int
    valid_until: int = FOREVER
    confidence: int = -1          # -1: the indicator states none
    tlp: int = 0                  # 0: unmarked; then clear, green, amber, amber+strict, red
    indicator_types: str = ""     # comma-separated
    name: str = ""
    held: str | None = None


@dataclass(frozen=True)
class FeedIndicator:
    """What the latest known version of one indicator contributes to a collection's feeds:
    its entries, or (`left_out`) why it contributes none. A revoked one has neither."""

    indicator_id: str
    version_key: int
    valid_until: int = FOREVER
    left_out: str | None = None
    entries: tuple[FeedEntry, ...] = ()


@dataclass(frozen=True)
class FeedState:
    """How far a collection's feed entries have read it (`cursor`, a date_added), when they
    last changed, and the fingerprint of the safety rules they were checked against."""

    cursor: int
    changed_at: int
    rules: str
    removals: int = 0     # the position in the collection's removals (deleted versions) read so far
@dataclass(frozen=True)
class PortalSession:
    """A signed-in portal visitor. The browser holds a random token; the store
    keeps only its hash, so a copy of the database cannot be used to sign in."""

    token_hash: str
    operator_id: str
    key_id: str
    created: int
    last_seen: int
    previous_visit: int | None = None  # when this key last used the portal before this session
    ended: int | None = None


class Store(abc.ABC):
    """A backend. Implementations must keep `date_added` strictly increasing
    within a collection, assigned inside the write that stores the version."""

    # -- objects -------------------------------------------------------------
    @abc.abstractmethod
    def add_versions(self, collection_id: str, versions: list[NewVersion],
                     status_for: StatusMaker | None = None, audit_for: AuditMaker | None = None,
                     submitted_by: Submission | None = None) -> list[AddOutcome]:
        """Store the versions in one atomic write; report one outcome per input, in order.

        With `status_for`, the status resource it makes from the outcomes is
        saved in that same write: a status exists exactly when its objects do.
        With `audit_for`, so is the audit record it makes. With `submitted_by`,
        each stored version records its submitter, and a version of an object
        owned by another operator is refused (planning.py). Raises StoreBusy
        when the write cannot start in time."""

    @abc.abstractmethod
    def object_versions(self, collection_id: str, object_id: str) -> list[VersionRecord]:
        """Every stored version of one object, submitters included, in version order (oldest first)."""

    @abc.abstractmethod
    def query(self, query: ObjectQuery) -> Page:
        """One page of versions in `date_added` order."""

    def begin_reading(self) -> None:
        """The start of one request's reads on this thread, ended by `end_reading`. A backend
        may look once here at whether the store has changed, and answer the reads of the
        request from what it read before if not (SQLite: storage/page_cache.py). Reads
        outside these calls look for themselves. Does nothing unless a backend says so."""

    def end_reading(self) -> None:
        """The end of the reads `begin_reading` began."""

    @abc.abstractmethod
    def object_exists(self, collection_id: str, object_id: str) -> bool:
        """True when any version of the object is in the collection."""

    @abc.abstractmethod
    def delete_versions(self, collection_id: str, object_id: str,
                        versions: VersionFilter, spec_versions: tuple[str, ...],
                        audit_for: Callable[[int], AuditEvent] | None = None) -> int:
        """Delete the matching versions of one object; return how many. When any
        went, the audit record `audit_for(count)` is saved in the same write."""

    @abc.abstractmethod
    def count_versions(self, collection_id: str) -> int:
        """How many versions a collection holds."""

    @abc.abstractmethod
    def recent_versions(self, collection_id: str, limit: int, before: int | None = None,
                        since: int | None = None, with_body: bool = True) -> list[StoredVersion]:
        """Up to `limit` latest versions, newest `date_added` first: those added
        strictly between `since` and `before` (either may be None)."""

    @abc.abstractmethod
    def last_added(self, collection_ids: list[str]) -> dict[str, int]:
        """The latest `date_added` each collection has given, for those that have
        stored anything (deleting objects does not move it back)."""

    # -- status resources ----------------------------------------------------
    @abc.abstractmethod
    def save_status(self, status_id: str, owner: str, created: int, body: bytes) -> None: ...

    @abc.abstractmethod
    def load_status(self, status_id: str) -> tuple[str, bytes] | None:
        """(owner, body) or None."""

    @abc.abstractmethod
    def purge_statuses(self, created_before: int) -> int:
        """Delete the statuses created before `created_before`; return how many."""

    # -- API keys ------------------------------------------------------------
    @abc.abstractmethod
    def add_key(self, record: ApiKeyRecord) -> None: ...

    @abc.abstractmethod
    def get_key(self, key_id: str) -> ApiKeyRecord | None: ...

    @abc.abstractmethod
    def list_keys(self, operator_id: str | None = None) -> list[ApiKeyRecord]: ...

    @abc.abstractmethod
    def revoke_key(self, key_id: str, at: int) -> bool:
        """Mark a key revoked; False when there is no such key."""

    @abc.abstractmethod
    def set_key_expiry(self, key_id: str, expires: int | None) -> bool: ...

    @abc.abstractmethod
    def touch_key(self, key_id: str, at: int) -> None:
        """Record that the key was used at `at`."""

    # -- rate limits ---------------------------------------------------------
    @abc.abstractmethod
    def spend_rate(self, spends: dict[str, tuple[int, int]], now: int) -> dict[str, int]:
        """GCRA state shared by every worker and host: for each bucket, `(since, cost)`
        moves its theoretical arrival time to `max(tat, since) + cost` (a cost of 0
        only reads it); return every bucket's new time. Buckets whose time is
        before `now` are worth nothing and may be forgotten."""

    # -- audit trail (append-only: there is deliberately no update or delete) ---
    @abc.abstractmethod
    def record_audit(self, event: AuditEvent) -> None: ...

    @abc.abstractmethod
    def record_audit_batch(self, events: list[AuditEvent]) -> None:
        """Append several events in one write."""

    @abc.abstractmethod
    def record_audit_counts(self, events: list[AuditEvent]) -> None:
        """Add each event's `count` to the row of its minute, client, operator, key id
        and status (made with the event's method, path and time when new), in one write."""

    @abc.abstractmethod
    def query_audit_log(self, operator_id: str | None, since: int | None, failures_only: bool,
                        limit: int) -> tuple[list[AuditEvent], int]:
        """The newest `limit` single-request events, newest first, and how many match in all."""

    @abc.abstractmethod
    def query_audit_counts(self, operator_id: str | None, since: int | None, failures_only: bool,
                           limit: int) -> tuple[list[AuditEvent], int]:
        """The same over the counted rows of `record_audit_counts`."""

    def query_audit(self, operator_id: str | None = None, since: int | None = None,
                    failures_only: bool = False, limit: int = 1000) -> list[AuditEvent]:
        """The newest `limit` events, in time order; `failures_only` keeps failed authentications."""
        return self.query_audit_page(operator_id, since, failures_only, limit)[0]

    def query_audit_page(self, operator_id: str | None = None, since: int | None = None,
                         failures_only: bool = False, limit: int = 1000) -> tuple[list[AuditEvent], int]:
        """`query_audit`, and how many older matching events it left out."""
        single, single_total = self.query_audit_log(operator_id, since, failures_only, limit)
        counted, counted_total = self.query_audit_counts(operator_id, since, failures_only, limit)
        newest = sorted(single + counted, key=lambda event: event.at, reverse=True)[:limit]
        # Sorting is stable: events at the same time keep the order they were recorded in.
        return newest[::-1], single_total + counted_total - len(newest)

    # -- client certificates (mutual TLS) ----------------------------------------
    @abc.abstractmethod
    def add_client_cert(self, record: ClientCertRecord) -> bool:
        """Register a certificate; False, changing nothing, when its fingerprint is already registered."""

    @abc.abstractmethod
    def find_client_cert(self, fingerprint: str) -> ClientCertRecord | None: ...

    @abc.abstractmethod
    def list_client_certs(self, operator_id: str | None = None) -> list[ClientCertRecord]: ...

    @abc.abstractmethod
    def revoke_client_cert(self, fingerprint: str, at: int) -> bool:
        """Mark a certificate revoked (the first revocation time is kept); False when it is not registered."""

    # -- copying a whole store (`taxii-server migrate`) ----------------------------
    @abc.abstractmethod
    def collection_ids(self) -> list[str]:
        """Every collection that has ever held a version, in id order."""

    @abc.abstractmethod
    def export_versions(self, collection_id: str, after_position: int | None, limit: int) -> list[VersionRecord]:
        """Up to `limit` versions after `date_added` = `after_position`, in `date_added` order."""

    @abc.abstractmethod
    def import_versions(self, collection_id: str, records: list[VersionRecord]) -> int:
        """Store copied versions under their own `date_added`, in one atomic write;
        return how many were new. A version already held with the same content is
        skipped. One held with other content, or a new one whose `date_added` is
        not after every version the collection holds (pollers have passed that
        point), raises StoreConflict and stores nothing."""

    @abc.abstractmethod
    def export_statuses(self, after_id: str | None, limit: int) -> list[StatusRecord]:
        """Up to `limit` statuses with an id after `after_id`, in id order."""

    @abc.abstractmethod
    def import_statuses(self, records: list[StatusRecord]) -> int:
        """Save the statuses not yet held (a status never changes); return how many were new."""

    @abc.abstractmethod
    def put_key(self, record: ApiKeyRecord) -> None:
        """Add the key, or replace the record held under its id (revocation and expiry included)."""

    @abc.abstractmethod
    def put_client_cert(self, record: ClientCertRecord) -> None:
        """Add the certificate, or replace the record held under its fingerprint."""

    # -- compliance records (taxii_server/compliance) ------------------------------------
    @abc.abstractmethod
    def record_deliveries(self, pages: list[DeliveredPage], polls: list[Poll]) -> None:
        """Append the pages, and keep the latest poll of each (operator, collection)."""

    @abc.abstractmethod
    def compact_deliveries(self, max_pages: int) -> int:
        """Turn up to `max_pages` recorded pages, oldest first, into Deliveries, keeping the
        earliest `delivered_at` of each (operator, collection, date_added); return how many
        pages went. Idempotent: two processes compacting the same pages record each delivery once."""

    @abc.abstractmethod
    def deliveries(self, collection_ids: tuple[str, ...] | None, operator_ids: tuple[str, ...] | None,
                   since: int | None, after: tuple[str, str, int] | None, limit: int) -> list[Delivery]:
        """Deliveries in (operator, collection, date_added) order, after the key `after`;
        None for `collection_ids` or `operator_ids` means all; `since` keeps those delivered at or after it."""

    @abc.abstractmethod
    def delivery_counts(self, collection_ids: tuple[str, ...] | None, operator_ids: tuple[str, ...] | None,
                        since: int | None, after: tuple[str, int] | None, limit: int) -> list[DeliveryCount]:
        """Per object version, in (collection, date_added) order after `after`: how many of the
        operators (all, or `operator_ids`) received it, and how many of them acknowledged it."""

    @abc.abstractmethod
    def has_delivery(self, operator_id: str, object_id: str, collection_ids: tuple[str, ...], before: int) -> bool:
        """True when any version of the object was delivered to the operator at or before `before`."""

    @abc.abstractmethod
    def mark_acknowledged(self, operator_id: str, object_id: str, collection_ids: tuple[str, ...], at: int) -> int:
        """Set `acknowledged_at` = `at` on the operator's deliveries of the object made at
        or before `at`, unless an earlier acknowledgement is already set; return how many."""

    @abc.abstractmethod
    def save_acknowledgement(self, ack: Acknowledgement) -> None:
        """Insert or replace the record of (operator, object, ack id); the first `acked_at` is kept."""

    @abc.abstractmethod
    def acknowledgements(self, since: int | None = None, unsettled_only: bool = False) -> list[Acknowledgement]:
        """In `acked_at` order."""

    @abc.abstractmethod
    def save_sighting(self, record: SightingRecord) -> None:
        """Keep the record with the latest `version_key` of each (operator, sighting)."""

    @abc.abstractmethod
    def sightings(self) -> list[SightingRecord]: ...

    @abc.abstractmethod
    def save_false_positive(self, record: FalsePositive) -> None:
        """Keep the first record of each (operator, opinion, indicator)."""

    @abc.abstractmethod
    def false_positives(self) -> list[FalsePositive]: ...

    @abc.abstractmethod
    def last_polls(self) -> list[Poll]:
        """The latest poll of each (operator, collection)."""

    @abc.abstractmethod
    def undelivered(self, collection_id: str, operator_ids: tuple[str, ...],
                    added_since: int) -> dict[str, tuple[int, int | None]]:
        """Per operator: (how many latest versions added at or after `added_since` were never
        delivered to it, the `date_added` of the oldest of them)."""

    @abc.abstractmethod
    def oldest_after_last_delivered(self, collection_id: str, operator_ids: tuple[str, ...],
                                    added_since: int) -> dict[str, int]:
        """Per operator behind the collection's newest latest version: the `date_added` of the
        oldest latest version added at or after `added_since` and after the newest version ever
        sent to it from the collection (its Deliveries, and pages not yet compacted). Operators
        sent that newest version are left out. For the delivery-lag metric, at each scrape: one
        key seek per operator, and one read of the collection's pages not yet compacted (read
        first, so that a compaction running meanwhile cannot hide a delivery)."""

    @abc.abstractmethod
    def unacknowledged_versions(self, collection_ids: tuple[str, ...]) -> dict[str, int]:
        """Per operator: versions delivered to it and not acknowledged since."""

    @abc.abstractmethod
    def compliance_cursor(self, collection_id: str) -> int:
        """The `date_added` up to which the collection's reports have been read (0 at first)."""

    @abc.abstractmethod
    def advance_compliance_cursor(self, collection_id: str, position: int) -> None:
        """Move the cursor forward to `position` (never back)."""

    @abc.abstractmethod
    def purge_compliance(self, before: int) -> int:
        """Delete deliveries, acknowledgements, sightings and false positives recorded before `before`;
        return how many records went."""
    # -- feeds: plain lists for firewalls and resolvers (taxii_server/feeds) ----------
    @abc.abstractmethod
    def feed_state(self, collection_id: str) -> FeedState | None:
        """The collection's feed state; None before its feeds were first built."""

    @abc.abstractmethod
    def removals(self, collection_id: str, after: int, limit: int) -> list[tuple[int, str]]:
        """(position, object id) of objects that lost versions to `delete_versions`, in the order of
        the deletions, after position `after`: how derived data such as feeds learns of deletions."""

    @abc.abstractmethod
    def feed_indicator_versions(self, collection_id: str, indicator_ids: list[str]) -> dict[str, int]:
        """The version_key each of these indicators has in the feed entries, for those that have one."""

    @abc.abstractmethod
    def apply_feed_changes(self, collection_id: str, expected: FeedState | None, state: FeedState,
                           indicators: list[FeedIndicator], start_over: bool = False,
                           purge_until: int | None = None) -> bool:
        """In one atomic write, only if the stored state still equals `expected` (None: there
        is none): with `start_over`, drop every entry of the collection first; replace each
        indicator's entries with the given ones; with `purge_until`, drop entries whose
        valid_until is at or before it; store `state`. False, writing nothing, when another
        process moved the state first."""

    @abc.abstractmethod
    def feed_entries(self, collection_id: str, kind: str, now: int, min_confidence: int | None = None,
                     max_tlp: int | None = None) -> Iterator[FeedEntry]:
        """Publishable entries of `kind` active at `now` (valid_from <= now < valid_until), highest
        confidence first, then newest date_added; `max_tlp` keeps unmarked ones. Read lazily:
        the cost follows the entries read, never the collection's size."""

    @abc.abstractmethod
    def feed_values(self, collection_id: str, kind: str, now: int, min_confidence: int | None = None,
                    max_tlp: int | None = None) -> Iterator[tuple[str, str]]:
        """(value, indicator_types) of the same entries in the same order as `feed_entries`: all that a
        one-value-a-line list needs, without building a record per entry."""

    @abc.abstractmethod
    def feed_last_boundary(self, collection_id: str, kind: str, now: int) -> int:
        """The latest moment at or before `now` at which an entry of `kind` became valid or
        expired (0 when none): the list can only have changed by itself then."""

    @abc.abstractmethod
    def feed_exclusions(self, collection_id: str, now: int, limit: int) -> tuple[list[FeedEntry], list[FeedIndicator]]:
        """Up to `limit` held entries and `limit` left-out indicators of the collection that are
        still valid at `now`, for the feed report."""
    # -- operations (health checks and metrics) ------------------------------------
    @abc.abstractmethod
    def ready(self, deadline: float) -> bool:
        """True when the store answers a query within `deadline` seconds and can take
        writes (on MongoDB: the replica set has a primary). Never raises: logs why not."""

    @abc.abstractmethod
    def size_bytes(self) -> int | None:
        """Bytes the store occupies, data and indexes; None when the backend cannot tell."""
    # -- portal sessions --------------------------------------------------------
    @abc.abstractmethod
    def add_portal_session(self, session: PortalSession) -> None: ...

    @abc.abstractmethod
    def get_portal_session(self, token_hash: str) -> PortalSession | None: ...

    @abc.abstractmethod
    def touch_portal_session(self, token_hash: str, at: int) -> None:
        """Record activity in the session at `at`."""

    @abc.abstractmethod
    def end_portal_session(self, token_hash: str, at: int) -> None:
        """Mark the session ended (the first end time is kept)."""

    @abc.abstractmethod
    def last_portal_visit(self, key_id: str) -> int | None:
        """The latest activity of any portal session signed in with this key; None when there was none."""

    def close(self) -> None:
        """Release connections."""
