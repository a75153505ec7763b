"""The audit trail: a record of every request, authenticated or not.

Handlers note what they touched (`note_collection`, `note_objects`); after the
response is built, `record` keeps who asked what, the outcome, how many
objects went in or out and from where. Only public key ids are recorded.

Where each record goes:
- a write's record is saved by the store inside the write's own transaction
  (`for_write`, `for_deletion`): it exists exactly when the write does;
- other requests by a key are appended in batches by the process's
  bookkeeping thread (`AuditBuffer`), at least every second;
- refused requests (failed authentications, 429) and anonymous ones (the
  public API description) are counted: one row per minute, client address,
  operator, key id and status, so nobody can flood the trail row by row.

Paths are kept as received, percent-encoded, and cut at MAX_PATH characters:
a request line cannot put a line break or a terminal escape in the trail.
"""

from __future__ import annotations

import logging
import threading
from urllib.parse import quote

from flask import Response, g, request

from .auth import presented_key_id
from .storage.base import AddOutcome, AuditEvent, Store
from .timestamps import now_micros

log = logging.getLogger(__name__)

MAX_PATH = 512
TRUNCATED = "..."
# Past this many unwritten records (a store that has refused writes for a while), the oldest go, said in the log.
MAX_PENDING = 100_000
# Characters that stay as they are in a stored path: those of a well-formed URL, "%" included.
_URL_CHARACTERS = "/?&=;:@!$'()*+,[]~%#"


def note_collection(collection_id: str) -> None:
    g.audit_collection = collection_id


def note_objects(count: int) -> None:
    g.audit_objects = count


def received_path(environ: dict) -> str:
    """The request target as the client sent it, percent-encoded, at most MAX_PATH characters."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw is None:  # a WSGI server that keeps no raw target: rebuild it from the decoded parts
        raw = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        if environ.get("QUERY_STRING"):
            raw += "?" + environ["QUERY_STRING"]
    # WSGI strings carry the request's bytes as latin-1; anything outside printable ASCII is encoded.
    path = quote(raw.encode("latin-1", "replace"), safe=_URL_CHARACTERS)
    return path if len(path) <= MAX_PATH else path[:MAX_PATH - len(TRUNCATED)] + TRUNCATED


def request_event(status: int, objects: int | None = None) -> AuditEvent:
    principal = g.get("principal")
    if principal is not None:
        key_id = principal.key_id
    else:  # the public id the caller presented, unless its address is past its allowance of failures
        key_id = None if g.get("audit_hide_key_id") else presented_key_id(request.headers.get("Authorization"))
    return AuditEvent(
        at=now_micros(),
        method=request.method,
        path=received_path(request.environ),
        status=status,
        client=request.remote_addr or "",
        operator_id=principal.operator.id if principal else None,
        key_id=key_id,
        collection_id=g.get("audit_collection"),
        objects=g.get("audit_objects", 0) if objects is None else objects,
    )


def for_write(status: int):
    """The audit maker a POST hands to `add_versions`: its record, made from the
    outcomes inside the write's transaction. Marks the request as recorded."""
    event = request_event(status)

    def make(outcomes: list[AddOutcome]) -> AuditEvent:
        g.audit_written = True
        stored_or_duplicate = sum(1 for outcome in outcomes if not outcome.conflict)
        return AuditEvent(**{**vars(event), "objects": stored_or_duplicate})
    return make


def for_deletion(status: int):
    """The same for `delete_versions`: called with how many versions went."""
    event = request_event(status)

    def make(deleted: int) -> AuditEvent:
        g.audit_written = True
        return AuditEvent(**{**vars(event), "objects": deleted})
    return make


def record(buffer: AuditBuffer, response: Response) -> Response:
    if g.get("audit_written"):  # saved with the write itself
        return response
    event = request_event(response.status_code)
    if event.operator_id is None or event.status == 429:
        buffer.add_counted(event)
    else:
        buffer.add(event)
    return response


class AuditBuffer:
    """One process's audit records waiting for the bookkeeping thread."""

    def __init__(self, store: Store):
        self._store = store
        self._lock = threading.Lock()
        self._events: list[AuditEvent] = []
        self._counted: dict[tuple, AuditEvent] = {}

    def add(self, event: AuditEvent) -> None:
        with self._lock:
            self._events.append(event)
            if len(self._events) > MAX_PENDING:
                del self._events[0]
                log.error("audit: the store has refused records for too long; dropped the oldest unwritten one")

    def add_counted(self, event: AuditEvent) -> None:
        row = (event.at // 60_000_000, event.client, event.operator_id, event.key_id, event.status)
        with self._lock:
            held = self._counted.get(row)
            if held is None and len(self._counted) >= MAX_PENDING:
                log.error("audit: too many unwritten counted rows; this refusal is not counted")
                return
            self._counted[row] = event if held is None else AuditEvent(**{**vars(held), "count": held.count + 1})

    def flush(self) -> None:
        with self._lock:
            events, self._events = self._events, []
            counted, self._counted = self._counted, {}
        try:
            if events:
                self._store.record_audit_batch(events)
                events = []
            if counted:
                self._store.record_audit_counts(list(counted.values()))
        except Exception:
            with self._lock:  # keep them, older first, for the next flush
                self._events[:0] = events
                for row, event in counted.items():
                    held = self._counted.get(row)
                    self._counted[row] = event if held is None else AuditEvent(
                        **{**vars(event), "count": event.count + held.count})
            raise
