"""The storage interface: what every backend (SQLite, MongoDB, ...) provides.

Storage speaks in collections, object versions, pages, statuses and key
records. It knows nothing of HTTP, of operators' rights or of TAXII text
formats: timestamps are integer microseconds, bodies are JSON bytes.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field


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


# Not frozen: a page makes a hundred of these per request, and a frozen
# dataclass is made five times slower (each field through object.__setattr__).
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


class Store(abc.ABC):
    """A backend. Implementations must keep `date_added` strictly increasing
    within a collection, assigned inside the write that stores the version."""

    # -- objects -------------------------------------------------------------
    @abc.abstractmethod
    def add_versions(self, collection_id: str, versions: list[NewVersion],
                     status_for: StatusMaker | None = None, audit_for: AuditMaker | None = None) -> list[AddOutcome]:
        """Store the versions in one atomic write; report one outcome per input, in order.

        With `status_for`, the status resource it makes from the outcomes is
        saved in that same write: a status exists exactly when its objects do.
        With `audit_for`, so is the audit record it makes. Raises StoreBusy when
        the write cannot start in time."""

    @abc.abstractmethod
    def query(self, query: ObjectQuery) -> Page:
        """One page of versions in `date_added` order."""

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

    def close(self) -> None:
        """Release connections."""
