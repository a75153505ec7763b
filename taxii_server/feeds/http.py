"""GET /feeds/<collection id or alias>/<list>: the lists firewalls and resolvers poll.

Authenticated like TAXII (Basic, Bearer or Token API keys, or a client certificate),
rate-limited and audited by the application's hooks, but answered in plain text:
app.py exempts this blueprint from TAXII media negotiation. A feed exists for
exactly the operators who may read its collection; anyone else gets the 404 of a
collection that does not exist. GET /feeds/report is the regulator's report of
what the feeds held back or left out.
"""

from __future__ import annotations

import gzip
import hashlib
from datetime import timezone

import orjson
from flask import Blueprint, Response, current_app, g, request
from werkzeug.http import http_date

from .. import audit
from ..app import app_services
from ..config import Collection
from ..errors import not_found
from ..policy import access, reads_feed_report
from .formats import CHECKSUM_SUFFIX, LISTS, Heading, checksum, render_csv, render_values
from .index import FeedIndex
from .report import feed_report, summarize
from .selection import FeedFilters, parse_filters, select_entries, select_values

blueprint = Blueprint("feeds", __name__, url_prefix="/feeds")
_CONTENT_TYPES = {"iocs.csv": "text/csv; charset=utf-8"}
_PLAIN = "text/plain; charset=utf-8"
_SECOND = 1_000_000


@blueprint.record_once
def _start_index(state) -> None:
    services = state.app.extensions["taxii"]
    state.app.extensions["feeds"] = FeedIndex(services.store, services.settings.feed_rules)


def feed_index() -> FeedIndex:
    return current_app.extensions["feeds"]


@blueprint.get("/report")
def report():
    if not reads_feed_report(g.principal.operator):
        raise not_found()
    index = feed_index()
    rows = feed_report(index, app_services().settings.collections, limit=10_000)
    audit.note_objects(len(rows))
    body = {"rows": [row.as_dict() for row in rows], "summary": summarize(rows)}
    return Response(orjson.dumps(body), content_type="application/json")


@blueprint.get("/<collection_id>/<list_name>")
def feed(collection_id: str, list_name: str):
    collection = _readable(collection_id)
    name = list_name.removesuffix(CHECKSUM_SUFFIX)
    if name not in LISTS:
        raise not_found(f"No such list. Lists: {', '.join(sorted(LISTS))}, each also with {CHECKSUM_SUFFIX}.")
    filters = parse_filters(request.args)
    index = feed_index()
    state = index.refresh(collection.id)
    now = index.now()
    boundary = max(index.store.feed_last_boundary(collection.id, kind, now) for kind in LISTS[name])
    as_of = max(state.changed_at, boundary)
    gzipped = request.accept_encodings.quality("gzip") > 0
    tag = _etag([collection.id, collection.title, list_name, filters.describe(), str(filters.comments),
                 str(state.changed_at), str(boundary), state.rules], gzipped)
    headers = {"ETag": f'"{tag}"', "Last-Modified": http_date(as_of // _SECOND), "Vary": "Accept-Encoding",
               "Cache-Control": "private, no-cache"}
    if _not_modified(tag, as_of, now):
        return Response(status=304, headers=headers)
    body = _list_body(index, collection, name, filters, as_of, now)
    if list_name != name:
        body = checksum(body)
    if gzipped:
        body, headers["Content-Encoding"] = gzip.compress(body, compresslevel=5, mtime=0), "gzip"
    return Response(body, headers=headers, content_type=_CONTENT_TYPES.get(list_name, _PLAIN))


def _list_body(index: FeedIndex, collection: Collection, name: str, filters: FeedFilters, as_of: int,
               now: int) -> bytes:
    """The list as served: its entries, selected and written in the list's format."""
    heading = Heading(name, collection.title, collection.id, as_of, filters.describe(), filters.comments)
    if name == "iocs.csv":
        entries = select_entries(index.store, collection.id, LISTS[name], filters, now)
        body = render_csv(heading, entries)
    else:
        (kind,) = LISTS[name]
        entries = select_values(index.store, collection.id, kind, filters, now)
        body = render_values(heading, entries)
    audit.note_objects(len(entries))
    return body


def _readable(collection_ref: str) -> Collection:
    """The collection, when the caller may read it; 404, as for an unknown one, otherwise."""
    collection = app_services().settings.collection(collection_ref)
    if collection is None or not access(g.principal.operator, collection).can_read:
        raise not_found()
    audit.note_collection(collection.id)
    return collection


def _etag(parts: list[str], gzipped: bool) -> str:
    """Names the list's content from what it depends on: the request, the collection, the
    safety rules, the last change of its entries (strictly later at each change) and the
    last moment an entry started or expired."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32] + ("-gzip" if gzipped else "")


def _not_modified(tag: str, as_of: int, now: int) -> bool:
    if request.if_none_match:  # RFC 9110: If-None-Match, when sent, decides alone
        return request.if_none_match.contains_weak(tag) or request.if_none_match.star_tag
    since = request.if_modified_since
    if since is None:
        return False
    # Last-Modified has whole seconds: within the second of the last change, a second
    # change could share its date, so answer in full.
    settled = now - as_of >= _SECOND
    return settled and as_of // _SECOND <= int(since.replace(tzinfo=since.tzinfo or timezone.utc).timestamp())
