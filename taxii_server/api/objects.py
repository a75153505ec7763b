"""Objects: list, add, get one, delete one (§5.4–§5.7)."""

from __future__ import annotations

from flask import Blueprint, request
from werkzeug.wsgi import get_input_stream

from .. import audit
from ..app import app_services
from ..errors import TaxiiError, forbidden, not_found
from ..ingest import store_objects
from ..media import content_type_is_taxii
from ..storage.base import VersionFilter
from ..timestamps import now_micros
from ..validation import objects_from_body
from .common import (caller, date_added_headers, page_request, paged_listing, readable_collection, taxii_response,
                     visible_collection)

blueprint = Blueprint("objects", __name__)


@blueprint.get("/collections/<collection_id>/objects/")
def get_objects(collection_id: str):
    collection = readable_collection(collection_id)
    wanted = page_request("objects", collection)
    page = app_services().store.query(wanted.query)
    body = paged_listing("objects", page, [record.body for record in page.records], wanted)
    return taxii_response(body, headers=date_added_headers(page, wanted.query.added_after))


@blueprint.get("/collections/<collection_id>/objects/<object_id>/")
def get_object(collection_id: str, object_id: str):
    collection = readable_collection(collection_id)
    store = app_services().store
    wanted = page_request("object", collection, object_id)
    if not store.object_exists(collection.id, object_id):
        raise not_found("No object with this id is in the collection.")
    page = store.query(wanted.query)
    body = paged_listing("objects", page, [record.body for record in page.records], wanted)
    return taxii_response(body, headers=date_added_headers(page, wanted.query.added_after))


@blueprint.delete("/collections/<collection_id>/objects/<object_id>/")
def delete_object(collection_id: str, object_id: str):
    collection, rights = visible_collection(collection_id)
    if not (rights.can_read and rights.can_write and rights.can_delete):
        raise forbidden("You may not delete objects from this collection.")
    wanted = page_request("delete", collection, object_id, default_versions=VersionFilter.every())
    deleted = app_services().store.delete_versions(collection.id, object_id, wanted.query.versions,
                                                   wanted.query.spec_versions, audit_for=audit.for_deletion(200))
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
    # The body is read only once the operator's turn has come: a refused POST costs no reading or parsing.
    report = store_objects(app_services(), caller(), collection, lambda: objects_from_body(_read_body()),
                           received=now_micros(), audit_for=audit.for_write(202))
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
