"""What a write will store, worked out before anything is written.

Every backend answers the same questions when versions arrive: is this one a
duplicate, a conflict, or new; which `date_added` does it get; and which
versions of each object are now its first and its last. The answers depend
only on the versions already held and on the collection's clock, so they are
computed here, once, as a plan the backend then writes in a single atomic
step. Planning first also means nothing is written when making the status
fails.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..timestamps import format_timestamp, millisecond_of, start_of_millisecond
from .base import AddOutcome, NewVersion, StoreConflict, Submission, VersionRecord

CONFLICT_MESSAGE = ("a different object with this id and version is already stored; "
                    "publish a new version with a later 'modified'")
# Names no one: in an anonymous collection the owner's identity is what the rule protects.
NOT_OWNER_MESSAGE = ("this object was first stored in this collection by another operator, and only that operator "
                     "may add versions of it; publish your own object under a new id instead")


@dataclass(frozen=True)
class HeldVersion:
    """One version of an object that the store already holds."""

    version_key: int
    content_hash: bytes
    version: str
    date_added: int = 0
    submitter: str | None = None


@dataclass(frozen=True)
class PlannedRow:
    record: VersionRecord
    is_first: bool
    is_last: bool


@dataclass
class WritePlan:
    outcomes: list[AddOutcome] = field(default_factory=list)
    # The versions to store, in date_added order; `_settle_first_and_last` turns them into rows.
    records: list[VersionRecord] = field(default_factory=list)
    rows: list[PlannedRow] = field(default_factory=list)
    # Objects whose held first (or last) version gives that place up to a new row.
    demote_first: list[str] = field(default_factory=list)
    demote_last: list[str] = field(default_factory=list)
    clock: int = 0


def plan_additions(versions: Iterable[NewVersion], held: dict[str, list[HeldVersion]], clock: int,
                   now: Callable[[], int], submitted_by: Submission | None = None) -> WritePlan:
    """New versions in input order. The first one stored gets `now`, or the first
    microsecond of the next millisecond when `now` falls in a millisecond an earlier
    write used; each further one the next microsecond.

    So no millisecond holds versions of two writes. A poll's last page (`more` false)
    ends at the end of a write, and a poller that cuts its X-TAXII-Date-Added-Last to
    the millisecond, which then means "after the end of that millisecond"
    (timestamps.parse_added_after), has seen the whole millisecond: no later write
    can fall into it. Pages within a poll may end inside a write; they are continued
    with `next`, which every client does while `more` is true.

    With `submitted_by`, a version of an object whose owner (see `_owner`) is
    another operator is refused: checked here, inside the write, so two
    operators racing to be first cannot both win."""
    plan, added, recorded = WritePlan(clock=clock), {}, _recorded(submitted_by)
    for new in versions:
        earlier, now_added = held.get(new.object_id), added.get(new.object_id)
        # Most versions of a post are of objects the collection does not hold yet: no list to build.
        known = [*(earlier or ()), *(now_added or ())] if earlier or now_added else ()
        same = next((h for h in known if h.content_hash == new.content_hash), None)
        if same is not None:
            plan.outcomes.append(AddOutcome(new.object_id, same.version, stored=False))
            continue
        date_added = plan.clock + 1 if plan.records else first_date_added(clock, now())
        version_key = new.version_key if new.version_key is not None else date_added
        version = new.version if new.version is not None else format_timestamp(date_added)
        owner = _owner(known)
        if submitted_by is not None and owner is not None and owner != submitted_by.operator_id:
            plan.outcomes.append(AddOutcome(new.object_id, version, stored=False, conflict=NOT_OWNER_MESSAGE))
            continue
        if any(h.version_key == version_key for h in known):
            plan.outcomes.append(AddOutcome(new.object_id, version, stored=False, conflict=CONFLICT_MESSAGE))
            continue
        record = VersionRecord(new.object_id, new.type, version, version_key, new.spec_version, date_added,
                               new.content_hash, new.body, *recorded)
        added.setdefault(new.object_id, []).append(_held(record))
        plan.outcomes.append(AddOutcome(new.object_id, version, stored=True))
        plan.clock = date_added
        plan.records.append(record)
    _settle_first_and_last(plan, held)
    return plan


def first_date_added(clock: int, now: int) -> int:
    """Where a write starts: `now`, unless that falls in or before the millisecond of
    the collection's clock (the last write's last version); then the next millisecond."""
    return max(now, start_of_millisecond(millisecond_of(clock) + 1))


def plan_import(collection_id: str, records: Iterable[VersionRecord], held: dict[str, list[HeldVersion]],
                clock: int) -> WritePlan:
    """Copied versions keep their own `date_added`; those already held are skipped.

    A copied version not yet held must come after everything the collection
    holds: one slipped in behind would sit where pollers have already passed.
    Checking that here also catches a `date_added` taken by another version
    before anything is written."""
    plan, added = WritePlan(clock=clock), {}
    for record in records:
        known = [*held.get(record.object_id, ()), *added.get(record.object_id, ())]
        same_key = next((h for h in known if h.version_key == record.version_key), None)
        if same_key is not None:
            if same_key.content_hash != record.content_hash:
                raise StoreConflict(f"collection {collection_id}: {record.object_id} version {record.version}"
                                    " is held with other content")
            continue
        if record.date_added <= plan.clock:
            raise StoreConflict(f"collection {collection_id}: {record.object_id} version {record.version} would be"
                                " stored behind versions already held; copy into a new store")
        added.setdefault(record.object_id, []).append(_held(record))
        plan.clock = record.date_added  # later than everything before it, as checked above
        plan.records.append(record)
    _settle_first_and_last(plan, held)
    return plan


def _held(record: VersionRecord) -> HeldVersion:
    return HeldVersion(record.version_key, record.content_hash, record.version, record.date_added, record.submitter)


def _owner(known: list[HeldVersion] | tuple[()]) -> str | None:
    """The operator that stored the object's earliest stored version with a known submitter.

    Versions stored before submitters were recorded name nobody: an object
    with only those is owned by whoever first adds a version with a submitter."""
    recorded = [h for h in known if h.submitter is not None]
    return min(recorded, key=lambda h: h.date_added).submitter if recorded else None


def _recorded(submitted_by: Submission | None) -> tuple[str | None, str | None, str | None]:
    if submitted_by is None:
        return None, None, None
    return submitted_by.operator_id, submitted_by.key_id, submitted_by.derived_from


def _settle_first_and_last(plan: WritePlan, held: dict[str, list[HeldVersion]]) -> None:
    """Make each new record a row flagged first and/or last of its object, and note which held
    versions lose those places."""
    new_keys: dict[str, list[int]] = {}
    for record in plan.records:
        new_keys.setdefault(record.object_id, []).append(record.version_key)
    bounds = {}
    for object_id, keys in new_keys.items():
        held_keys = [h.version_key for h in held.get(object_id, ())]
        first, last = min(keys + held_keys), max(keys + held_keys)
        bounds[object_id] = first, last
        if held_keys and first not in held_keys:
            plan.demote_first.append(object_id)
        if held_keys and last not in held_keys:
            plan.demote_last.append(object_id)
    plan.rows = [PlannedRow(record, record.version_key == bounds[record.object_id][0],
                            record.version_key == bounds[record.object_id][1]) for record in plan.records]
