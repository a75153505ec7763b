"""Storing what an operator submits: the one write path of POST objects and the portal's forms.

objects -> bounds on the request's work (bounded_work.py) -> validation and the
sharing rules (sharing/screening.py) -> one atomic write of the accepted versions
with their status resource and, for an API request, its audit record.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import orjson
from flask import has_app_context

from . import retention
from .auth import Principal
from .bounded_work import envelope_size_problem, one_post_at_a_time
from .config import Collection
from .ops import metrics
from .sharing.screening import screen, store_screened
from .storage.base import AddOutcome, AuditMaker, NewVersion, StatusRecord
from .timestamps import format_timestamp, now_micros
from .validation import Rejected


def store_objects(services, principal: Principal, collection: Collection, read_items: Callable[[], list[dict]],
                  received: int, audit_for: AuditMaker | None = None) -> StatusReport:
    """Validate, screen and store the objects `read_items` gives, for `principal`; the status report of the write.

    The objects are read once the operator's turn has come (bounded_work.one_post_at_a_time:
    429 when too many of its submissions are under way here). Raises 413 when there
    are more objects than one request may carry."""
    limits = services.settings.work
    with one_post_at_a_time(principal.operator.id):
        items = read_items()
        too_many = envelope_size_problem(len(items), limits)
        if too_many:
            raise too_many
        screening = screen(services.settings, principal, collection, items, received)
        del items  # the parsed request is no longer needed; only the checked versions are
        report = StatusReport(received, principal.operator.id, screening.checked)
        store_screened(services.store, collection, screening, status_for=report, audit_for=audit_for)
    retention.purge_expired_statuses(services.store, limits.status_retention_seconds)
    if has_app_context():  # a request's count; a write from outside one (seeding a store) has no request to count
        metrics.note_rejected(len(screening.checked) - report.success_count)
    return report


class StatusReport:
    """Makes the status resource (§4.3) of one POST from the store's outcomes.

    The store calls it inside the write that stores the objects, so the
    status is saved exactly when the objects are."""

    def __init__(self, received: int, owner: str, checked: list[NewVersion | Rejected]):
        self.received, self.owner, self.checked = received, owner, checked
        self.success_count = 0
        self.record: StatusRecord | None = None

    def __call__(self, outcomes: list[AddOutcome]) -> StatusRecord:
        successes, failures = self._details(iter(outcomes))
        self.success_count = len(successes)
        resource = {
            "id": str(uuid.uuid4()),
            "status": "complete",
            "request_timestamp": format_timestamp(self.received),
            "total_count": len(successes) + len(failures),
            "success_count": len(successes),
            "failure_count": len(failures),
            "pending_count": 0,
        }
        if successes:  # TAXII lists are never empty (§2)
            resource["successes"] = successes
        if failures:
            resource["failures"] = failures
        self.record = StatusRecord(resource["id"], self.owner, now_micros(), orjson.dumps(resource))
        return self.record

    def _details(self, outcomes) -> tuple[list[dict], list[dict]]:
        """status-details in request order: rejected by validation, refused by the store, or stored."""
        successes, failures = [], []
        for item in self.checked:
            if isinstance(item, Rejected):
                failures.append({"id": _bounded(item.object_id, MAX_ID_CHARS),
                                 "version": _bounded(item.version, MAX_VERSION_CHARS),
                                 "message": _bounded(item.message, MAX_MESSAGE_CHARS)})
                continue
            outcome = next(outcomes)
            detail = {"id": outcome.object_id, "version": outcome.version}
            if outcome.conflict:
                failures.append({**detail, "message": _bounded(outcome.conflict, MAX_MESSAGE_CHARS)})
            else:
                successes.append(detail if outcome.stored else {**detail, "message": "already stored (exact duplicate)"})
        return successes, failures


# A status keeps at most this much of what a refused object claimed and of the
# reason, so that its size is bounded by the number of objects in the request:
# a valid id has at most 288 characters and a timestamp 30 or so.
MAX_ID_CHARS, MAX_VERSION_CHARS, MAX_MESSAGE_CHARS = 300, 64, 300


def _bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"
