"""What every TAXII blueprint shares: the caller, collection look-up with
rights, and responses in the TAXII media type."""

from __future__ import annotations

import orjson
from flask import Response, g, request

from .. import audit
from ..app import app_services
from ..auth import Principal
from ..compliance.deliveries import page_sent
from ..config import Collection
from ..errors import forbidden, not_found
from ..media import STIX_MEDIA_TYPE, TAXII_MEDIA_TYPE
from ..policy import Access, access
from ..query import PageRequest, parse_filters
from ..storage.base import Page, StoredVersion, VersionFilter
from ..timestamps import format_timestamp

ENVELOPE_ALLOWANCE = 1024  # bytes of a page that are not objects, at most


def caller() -> Principal:
    return g.principal


def taxii_response(payload: dict | bytes, status: int = 200, headers: dict | None = None) -> Response:
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return Response(body, status=status, headers=headers, content_type=TAXII_MEDIA_TYPE)


def visible_collection(id_or_alias: str) -> tuple[Collection, Access]:
    """The collection and the caller's rights; 404 when the caller may not see it."""
    collection = app_services().settings.collection(id_or_alias)
    if collection is None:
        raise not_found()
    rights = access(caller().operator, collection)
    if not rights.visible:
        raise not_found()
    audit.note_collection(collection.id)
    return collection, rights


def readable_collection(id_or_alias: str) -> Collection:
    collection, rights = visible_collection(id_or_alias)
    if not rights.can_read:
        raise forbidden("You may add objects to this collection but not read it.")
    g.collection_read = collection
    return collection


def date_added_headers(page: Page, added_after: int | None) -> dict:
    """X-TAXII-Date-Added-First/-Last (§3.2).

    An empty page has no dates of its own; when the request had `added_after`
    both headers repeat it, so a poller that copies -Last keeps its place.
    """
    if page.records:
        first, last = page.records[0].date_added, page.records[-1].date_added
    elif added_after is not None:
        first = last = added_after
    else:
        return {}
    return {"X-TAXII-Date-Added-First": format_timestamp(first), "X-TAXII-Date-Added-Last": format_timestamp(last)}


def next_token(page: Page, wanted: PageRequest) -> str | None:
    if not page.more or not page.records:
        return None
    return app_services().cursors.make(page.records[-1].date_added, wanted.fingerprint, wanted.carried)


def paged_listing(key: str, page: Page, items_json: list[bytes], wanted: PageRequest) -> bytes:
    """`{"more": .., "next": .., key: [...]}` built from pre-serialised items,
    so stored objects are sent as stored without being parsed again."""
    audit.note_objects(len(items_json))
    page_sent(page)  # compliance records: what the caller has now been sent
    parts = [b'{"more":', b"true" if page.more else b"false"]
    token = next_token(page, wanted)
    if token:
        parts += [b',"next":', orjson.dumps(token)]
    if items_json:  # TAXII lists are never empty (§2): omit the key instead
        parts += [b',"', key.encode(), b'":[', b",".join(items_json), b"]"]
    parts.append(b"}")
    return b"".join(parts)


def manifest_record(record: StoredVersion) -> dict:
    return {"id": record.object_id, "date_added": format_timestamp(record.date_added),
            "version": record.version, "media_type": STIX_MEDIA_TYPE}


def page_request(endpoint: str, collection: Collection, object_id: str | None = None,
                 default_versions: VersionFilter | None = None) -> PageRequest:
    """The request's filters, validated for `endpoint` and bound to the caller."""
    services = app_services()
    settings = services.settings
    return parse_filters(endpoint, request.args, collection_id=collection.id, object_id=object_id,
                         caller=caller().operator.id, default_limit=settings.default_limit,
                         max_limit=settings.max_limit, signer=services.cursors, default_versions=default_versions,
                         # Room for the envelope around the objects: "more", "next" and the brackets.
                         max_bytes=settings.work.max_page_bytes - ENVELOPE_ALLOWANCE)
