"""The audit trail: one record per request, authenticated or not.

Handlers note what they touched (`note_collection`, `note_objects`); after the
response is built, `record` writes who asked what, the outcome, how many
objects went in or out and from where. Only public key ids are recorded.
"""

from __future__ import annotations

import logging

from flask import Response, g, request

from .auth import presented_key_id
from .storage.base import AuditEvent, Store
from .timestamps import now_micros

log = logging.getLogger(__name__)


def note_collection(collection_id: str) -> None:
    g.audit_collection = collection_id


def note_objects(count: int) -> None:
    g.audit_objects = count


def record(store: Store, response: Response) -> Response:
    principal = g.get("principal")
    event = AuditEvent(
        at=now_micros(),
        method=request.method,
        path=request.full_path.rstrip("?"),
        status=response.status_code,
        client=request.remote_addr or "",
        operator_id=principal.operator.id if principal else None,
        key_id=principal.key_id if principal else presented_key_id(request.headers.get("Authorization")),
        collection_id=g.get("audit_collection"),
        objects=g.get("audit_objects", 0),
    )
    try:
        store.record_audit(event)
    except Exception:  # a full disk must not turn a served answer into an error; say so loudly instead
        log.exception("could not write the audit record for %s %s", event.method, event.path)
    return response
