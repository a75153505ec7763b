"""Object versions: GET {api-root}/collections/{id}/objects/{object-id}/versions/ (§5.8)."""

from dataclasses import replace

import orjson
from flask import Blueprint

from ..app import app_services
from ..errors import not_found
from ..storage.base import VersionFilter
from .common import date_added_headers, page_request, paged_listing, readable_collection, taxii_response

blueprint = Blueprint("versions", __name__)


@blueprint.get("/collections/<collection_id>/objects/<object_id>/versions/")
def get_versions(collection_id: str, object_id: str):
    collection = readable_collection(collection_id)
    store = app_services().store
    wanted = page_request("versions", collection, object_id, default_versions=VersionFilter.every())
    if not store.object_exists(collection.id, object_id):
        raise not_found("No object with this id is in the collection.")
    page = store.query(replace(wanted.query, with_body=False))
    versions = [orjson.dumps(record.version) for record in page.records]
    body = paged_listing("versions", page, versions, wanted)
    return taxii_response(body, headers=date_added_headers(page, wanted.query.added_after))
