"""The storage interface: what every backend (SQLite, MongoDB, ...) provides.

Storage speaks in collections, object versions, pages, statuses and key
records. It knows nothing of HTTP, of operators' rights or of TAXII text
formats: timestamps are integer microseconds, bodies are JSON bytes.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator
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

    def close(self) -> None:
        """Release connections."""
