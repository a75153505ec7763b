"""Objects: list, add, get one, delete one (§5.4–§5.7)."""

import uuid

import orjson
from flask import Blueprint, request
from werkzeug.wsgi import get_input_stream

from .. import audit, retention
from ..app import app_services
from ..bounded_work import envelope_size_problem, one_post_at_a_time
from ..errors import TaxiiError, forbidden, not_found
from ..media import content_type_is_taxii
from ..storage.base import AddOutcome, NewVersion, StatusRecord, VersionFilter
from ..timestamps import format_timestamp, now_micros
from ..validation import Rejected, check_objects, objects_from_body
from .common import (caller, date_added_headers, page_request, paged_listing, readable_collection, taxii_response,
                     visible_collection)

blueprint = Blueprint("objects", __name__)


@blueprint.get("/collections/<collection_id>/objects/")
def get_objects(collection_id: str):
    collection = readable_collection(collection_id)
    wanted = page_request("objects", collection)
    page = app_services().store.query(wanted.query)
    body = paged_listing("objects", page, [record.body for record in page.records], wanted.fingerprint)
    return taxii_response(body, headers=date_added_headers(page, wanted.query.added_after))


@blueprint.get("/collections/<collection_id>/objects/<object_id>/")
def get_object(collection_id: str, object_id: str):
    collection = readable_collection(collection_id)
    store = app_services().store
    wanted = page_request("object", collection, object_id)
    if not store.object_exists(collection.id, object_id):
        raise not_found("No object with this id is in the collection.")
    page = store.query(wanted.query)
    body = paged_listing("objects", page, [record.body for record in page.records], wanted.fingerprint)
    return taxii_response(body, headers=date_added_headers(page, wanted.query.added_after))


@blueprint.delete("/collections/<collection_id>/objects/<object_id>/")
def delete_object(collection_id: str, object_id: str):
    collection, rights = visible_collection(collection_id)
    if not (rights.can_read and rights.can_write and rights.can_delete):
        raise forbidden("You may not delete objects from this collection.")
    wanted = page_request("delete", collection, object_id, default_versions=VersionFilter.every())
    deleted = app_services().store.delete_versions(collection.id, object_id, wanted.query.versions,
                                                   wanted.query.spec_versions)
    if not deleted:
        raise not_found("No object with this id and these filters is in the collection.")
    audit.note_objects(deleted)
    return taxii_response(b"")


@blueprint.post("/collections/<collection_id>/objects/")
def add_objects(collection_id: str):
    collection, rights = visible_collection(collection_id)
    if not rights.can_write:
        raise forbidden("You may read this collection but not add objects to it.")
    if not content_type_is_taxii(request.headers.get("Content-Type")):
        raise TaxiiError(415, "Unsupported media type",
                         "Send the envelope as Content-Type: application/taxii+json;version=2.1.")
    received = now_micros()
    services = app_services()
    limits = services.settings.work
    # The slot is taken before the body is read: a refused POST costs no reading or parsing.
    with one_post_at_a_time(caller().operator.id):
        items = objects_from_body(_read_body())
        too_many = envelope_size_problem(len(items), limits)
        if too_many:
            raise too_many
        checked = check_objects(items, limits)
        del items  # the parsed request is no longer needed; only the checked versions are
        report = StatusReport(received, caller().operator.id, checked)
        accepted = [item for item in checked if not isinstance(item, Rejected)]
        services.store.add_versions(collection.id, accepted, status_for=report)
    retention.purge_expired_statuses(services.store, limits.status_retention_seconds)
    audit.note_objects(report.success_count)
    return taxii_response(report.record.body, status=202)


def _read_body() -> bytes:
    """The request body, refused with 413 before reading when it is declared
    too large, and while reading when it is not declared (chunked)."""
    limit = app_services().settings.max_content_length
    too_large = TaxiiError(413, "Payload too large", f"The body exceeds max_content_length ({limit} bytes).")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    # Not request.stream: for a body without Content-Length Werkzeug stops that
    # stream silently at MAX_CONTENT_LENGTH (= limit), hiding anything longer.
    # A stream capped one byte higher shows whether the body goes past the limit.
    body = get_input_stream(request.environ, max_content_length=limit + 1).read(limit + 1)
    if len(body) > limit:
        raise too_large
    return body


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
