"""Object manifests: GET {api-root}/collections/{id}/manifest/ (§5.3)."""

from dataclasses import replace

import orjson
from flask import Blueprint

from ..app import app_services
from .common import date_added_headers, manifest_record, page_request, paged_listing, readable_collection, taxii_response

blueprint = Blueprint("manifest", __name__)


@blueprint.get("/collections/<collection_id>/manifest/")
def get_manifest(collection_id: str):
    collection = readable_collection(collection_id)
    wanted = page_request("manifest", collection)
    page = app_services().store.query(replace(wanted.query, with_body=False))
    records = [orjson.dumps(manifest_record(record)) for record in page.records]
    body = paged_listing("objects", page, records, wanted)
    return taxii_response(body, headers=date_added_headers(page, wanted.query.added_after))
