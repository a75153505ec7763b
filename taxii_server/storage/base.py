"""The storage interface: what every backend (SQLite, MongoDB, ...) provides.

Storage speaks in collections, object versions, pages, statuses and key
records. It knows nothing of HTTP, of operators' rights or of TAXII text
formats: timestamps are integer microseconds, bodies are JSON bytes.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple


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


@dataclass(frozen=True)
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


class Store(abc.ABC):
    """A backend. Implementations must keep `date_added` strictly increasing
    within a collection, assigned inside the write that stores the version."""

    # -- objects -------------------------------------------------------------
    @abc.abstractmethod
    def add_versions(self, collection_id: str, versions: list[NewVersion],
                     status_for: StatusMaker | None = None) -> list[AddOutcome]:
        """Store the versions in one atomic write; report one outcome per input, in order.

        With `status_for`, the status resource it makes from the outcomes is
        saved in that same write: a status exists exactly when its objects do."""

    @abc.abstractmethod
    def query(self, query: ObjectQuery) -> Page:
        """One page of versions in `date_added` order."""

    @abc.abstractmethod
    def object_exists(self, collection_id: str, object_id: str) -> bool:
        """True when any version of the object is in the collection."""

    @abc.abstractmethod
    def delete_versions(self, collection_id: str, object_id: str,
                        versions: VersionFilter, spec_versions: tuple[str, ...]) -> int:
        """Delete the matching versions of one object; return how many."""

    @abc.abstractmethod
    def count_versions(self, collection_id: str) -> int:
        """How many versions a collection holds."""

    # -- status resources ----------------------------------------------------
    @abc.abstractmethod
    def save_status(self, status_id: str, owner: str, created: int, body: bytes) -> None: ...

    @abc.abstractmethod
    def load_status(self, status_id: str) -> tuple[str, bytes] | None:
        """(owner, body) or None."""

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
    def count_request(self, bucket: str, window: int) -> int:
        """Count one request against `bucket` in time window `window` and
        return the window's count so far, this one included. Counters live in
        the store so that every worker and host shares them."""

    # -- audit trail (append-only: there is deliberately no update or delete) ---
    @abc.abstractmethod
    def record_audit(self, event: AuditEvent) -> None: ...

    @abc.abstractmethod
    def query_audit(self, operator_id: str | None = None, since: int | None = None,
                    failures_only: bool = False, limit: int = 1000) -> list[AuditEvent]:
        """Events in time order, oldest first; `failures_only` keeps failed authentications."""

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

    def close(self) -> None:
        """Release connections."""
