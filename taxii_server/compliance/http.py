"""The reports as JSON over HTTP, for the regulator's keys only:

    GET /<api-root>/compliance/deliveries/            one row per object version and licensee
    GET /<api-root>/compliance/deliveries/summary/    per object version: licensees delivered, acknowledged
    GET /<api-root>/compliance/licensees/             per licensee
    GET /<api-root>/compliance/sightings/             per indicator
    GET /<api-root>/compliance/acknowledgements/      every acknowledgement, with its status

Authenticated as every request; anyone but the regulator gets 404, as for
anything it may not see. Rows come in pages (`limit`, `next`) where a report
can be long.
"""

from __future__ import annotations

import base64
import binascii

import orjson
from flask import Blueprint, Flask, Response, current_app, g, request
from werkzeug.exceptions import NotFound

from ..config import Settings
from ..errors import bad_request
from ..policy import can_see_compliance
from ..storage.base import Store
from . import reports
from .deliveries import EXTENSION
from .service import ComplianceService

blueprint = Blueprint("compliance", __name__)
DEFAULT_LIMIT, MAX_LIMIT = 1000, 10_000


def install(app: Flask, settings: Settings, store: Store) -> ComplianceService:
    """Give the application its compliance service, the report routes and the write notice."""
    service = ComplianceService(settings, store)
    app.extensions[EXTENSION] = service
    app.register_blueprint(blueprint, url_prefix=f"/{settings.api_root_path}/compliance")
    app.after_request(_note_write)
    return service


def service() -> ComplianceService:
    return current_app.extensions[EXTENSION]


@blueprint.before_request
def _regulator_only() -> None:
    # The very answer of a URL that does not exist: to a licensee, these do not.
    if not can_see_compliance(g.principal.operator):
        raise NotFound()


@blueprint.get("/deliveries/")
def deliveries():
    rows, cursor = reports.delivery_rows(service(), _collections(), _since(), _next((str, str, int)), _limit())
    return _json({"deliveries": rows, **_more(cursor)})


@blueprint.get("/deliveries/summary/")
def delivery_summary():
    rows, cursor = reports.delivery_summary(service(), _collections(), _since(), _next((str, int)), _limit())
    return _json({"objects": rows, **_more(cursor)})


@blueprint.get("/licensees/")
def licensees():
    return _json({"licensees": reports.licensee_rows(service())})


@blueprint.get("/sightings/")
def sightings():
    return _json({"indicators": reports.sighting_rows(service())})


@blueprint.get("/acknowledgements/")
def acknowledgements():
    return _json({"acknowledgements": reports.acknowledgement_rows(service(), _since())})


def _note_write(response: Response) -> Response:
    if request.endpoint == "objects.add_objects" and response.status_code == 202:
        collection = service().settings.collection((request.view_args or {}).get("collection_id", ""))
        if collection is not None:
            service().note_write(collection.id)
    return response


def _collections():
    wanted = request.args.get("collection")
    if wanted is None:
        return None
    collection = service().settings.collection(wanted)
    if collection is None or not collection.track_deliveries:
        raise bad_request(f"'collection': no collection {wanted!r} records deliveries.")
    return (collection,)


def _since() -> int | None:
    text = request.args.get("since")
    try:
        return reports.since(text) if text is not None else None
    except ValueError as exc:
        raise bad_request(f"'since': {exc}") from None


def _limit() -> int:
    text = request.args.get("limit", str(DEFAULT_LIMIT))
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_LIMIT:
        raise bad_request(f"'limit' must be a whole number from 1 to {MAX_LIMIT}.")
    return int(text)


def _next(shape: tuple[type, ...]) -> tuple | None:
    token = request.args.get("next")
    if token is None:
        return None
    try:
        key = orjson.loads(base64.urlsafe_b64decode(token.encode("ascii") + b"=" * (-len(token) % 4)))
    except (ValueError, UnicodeEncodeError, binascii.Error, orjson.JSONDecodeError):
        key = None
    if not (isinstance(key, list) and len(key) == len(shape)
            and all(type(part) is kind for part, kind in zip(key, shape))
            and all(abs(part) < 2 ** 63 for part in key if isinstance(part, int))):  # what a store can hold
        raise bad_request("'next' is not a token this report gave.")
    return tuple(key)


def _more(cursor: tuple | None) -> dict:
    if cursor is None:
        return {"more": False}
    return {"more": True, "next": base64.urlsafe_b64encode(orjson.dumps(list(cursor))).decode().rstrip("=")}


def _json(payload: dict) -> Response:
    return Response(orjson.dumps(payload), content_type="application/json")
