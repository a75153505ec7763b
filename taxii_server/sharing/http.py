"""The regulator's sharing actions over HTTP, under the API root.

    POST /<api root>/sharing/publish/              {"object_id": ..., "from": C, "to": C}
    GET  /<api root>/sharing/provenance/<object id>/[?collection=C]

Only keys whose operator may republish (policy.can_republish: the regulator)
reach them. For everyone else they do not exist: the answer is byte for byte
the one for a URL the server does not serve.
"""

from __future__ import annotations

import orjson
from flask import Blueprint, request
from werkzeug.exceptions import NotFound

from ..api.common import caller, taxii_response
from ..app import app_services
from ..config import Collection
from ..errors import TaxiiError, bad_request, not_found, unprocessable
from ..policy import can_republish
from ..timestamps import format_timestamp
from .provenance import provenance
from .republish import PublishRefused, publish

blueprint = Blueprint("sharing", __name__)
_JSON_TYPES = ("application/json", "application/taxii+json")


@blueprint.before_request
def _regulator_only() -> None:
    if not can_republish(caller().operator):
        raise NotFound()


@blueprint.post("/sharing/publish/")
def publish_object():
    if (request.mimetype or "") not in _JSON_TYPES:
        raise TaxiiError(415, "Unsupported media type", "Send a JSON object as Content-Type: application/json.")
    try:
        wanted = orjson.loads(request.get_data(cache=False))
    except orjson.JSONDecodeError as exc:
        raise unprocessable(f"The body is not valid JSON: {exc}.") from None
    if not isinstance(wanted, dict) or not all(isinstance(wanted.get(k), str) for k in ("object_id", "from", "to")):
        raise unprocessable('Send {"object_id": "...", "from": "<collection>", "to": "<collection>"}.')
    services = app_services()
    try:
        published = publish(services.settings, services.store, caller(), wanted["object_id"],
                            _collection(wanted["from"]), _collection(wanted["to"]))
    except PublishRefused as exc:
        raise unprocessable(f"Not republished: {exc}.") from None
    return taxii_response({"id": published.object_id, "version": published.version,
                           "collection": published.collection.id}, status=201)


@blueprint.get("/sharing/provenance/<object_id>/")
def object_provenance(object_id: str):
    services = app_services()
    named = request.args.get("collection")
    found = provenance(services.settings, services.store, object_id, _collection(named) if named else None)
    if not found.versions:
        raise not_found("No version of this object is stored.")
    body = found.as_json()
    for version in body["versions"]:
        version["date_added"] = format_timestamp(version["date_added"])
    return taxii_response(body)


def _collection(id_or_alias: str) -> Collection:
    collection = app_services().settings.collection(id_or_alias)
    if collection is None:
        raise bad_request(f"There is no collection {id_or_alias!r}.")
    return collection
