"""The regulator's pages: the compliance matrix, the inbox of licensees' reports
(with republishing), sightings per indicator and the feed report.

Whether a page exists for the signed-in operator is asked of policy.py
(can_see_compliance, can_republish, reads_feed_report); to anyone else it is
the portal's 404, as over the API. Every listing is bounded, and says so.
"""

from __future__ import annotations

import orjson
from flask import abort, flash, g, redirect, render_template, request, url_for

from .. import audit
from ..compliance import reports, scope
from ..compliance.http import service as compliance_service
from ..feeds.http import feed_index
from ..feeds.report import feed_report, summarize
from ..policy import access, can_republish, can_see_compliance, reads_feed_report
from ..sharing.identities import identity_of
from ..sharing.republish import PublishRefused, publish
from ..storage.base import ObjectQuery
from . import rights
from .stix_view import title_of
from .views import _all_private, _operator, _settings, _store, blueprint

MATRIX_ROWS = 25            # object versions a matrix page shows
MATRIX_CELLS = 5_000        # deliveries read to fill one page's cells
INBOX_SIZE = 50             # newest reports shown, across every licensee
INBOX_SCAN = 100            # newest versions read per private collection to find them
SIGHTINGS_SHOWN = 200
FEED_ROWS_PER_COLLECTION = 200  # read per collection and outcome, all counted in the summary
FEED_ENTRIES_SHOWN = 200        # of those, listed one by one
NOT_REPORTS = frozenset({"opinion", "identity", "marking-definition", "extension-definition", "language-content"})


def _only_if(allowed) -> None:
    if not allowed(_operator()):
        abort(404)


# -- the compliance matrix -----------------------------------------------------------------------------------------

@blueprint.get("/compliance")
def compliance():
    """Object versions delivered x licensees, the licensees most behind on this page first.

    Behind is counted over the page's cells, not with reports.licensee_rows: that report
    compares every latest version with every licensee's deliveries, a cost that grows with
    the store, where a page must stay bounded."""
    _only_if(can_see_compliance)
    service = compliance_service()
    after = _matrix_cursor(request.args.get("after"))
    objects, cursor = reports.delivery_summary(service, after=after, limit=MATRIX_ROWS)
    cells, complete = _cells(service, objects)
    licensees = sorted(({"operator": op.id, "name": op.name, **_behind(op.id, objects, cells)}
                        for op in scope.licensees(_settings())),
                       key=lambda row: (-(row["undelivered"] + row["unacknowledged"]), row["name"]))
    return render_template("compliance.html", licensees=licensees, objects=objects, cells=cells,
                           titles=_titles(objects), complete=complete, next_after=_cursor_text(cursor),
                           first_page=after is None, page_size=MATRIX_ROWS, cell_limit=MATRIX_CELLS,
                           api_root=_settings().api_root_path)


def _titles(objects: list[dict]) -> dict[str, str]:
    """Object id -> its title, with one query per collection on the page."""
    by_collection: dict = {}
    for row in objects:
        by_collection.setdefault(row["collection"], set()).add(row["object_id"])
    titles = {}
    for name, ids in by_collection.items():
        collection = _settings().collection(name)
        if collection is None:
            continue
        for record in _store().query(ObjectQuery(collection_id=collection.id, limit=len(ids), ids=tuple(ids))).records:
            titles[record.object_id] = title_of(orjson.loads(record.body))
    return titles


def _behind(operator_id: str, objects: list[dict], cells: dict) -> dict:
    rows = [cells.get((item["object_id"], item["version"], operator_id)) for item in objects]
    return {"undelivered": sum(row is None for row in rows),
            "unacknowledged": sum(row is not None and not row["acknowledged_at"] for row in rows)}


def _cells(service, objects: list[dict]) -> tuple[dict, bool]:
    """(object id, version, licensee) -> its delivery row, for the versions on the page: every
    delivery of them was made at or after the earliest first delivery among them."""
    if not objects:
        return {}, True
    earliest = min(reports.since(row["first_delivered"]) for row in objects if row["first_delivered"])
    wanted = {(row["object_id"], row["version"]) for row in objects}
    rows, more = reports.delivery_rows(service, since=earliest, limit=MATRIX_CELLS)
    return {(r["object_id"], r["version"], r["operator"]): r for r in rows
            if (r["object_id"], r["version"]) in wanted}, more is None


def _matrix_cursor(text: str | None) -> tuple[str, int] | None:
    if not text:
        return None
    collection_id, _, date_added = text.rpartition(":")
    if not collection_id or not date_added.isdigit() or len(date_added) > 18 or len(collection_id) > 300:
        abort(400, "The page position is not valid.")
    return collection_id, int(date_added)


def _cursor_text(cursor: tuple[str, int] | None) -> str | None:
    return f"{cursor[0]}:{cursor[1]}" if cursor else None


# -- the inbox -------------------------------------------------------------------------------------------------------

@blueprint.get("/inbox")
def inbox():
    """The newest objects licensees reported in their private collections, newest first."""
    _only_if(can_republish)
    operator = _operator()
    sources = [(licensee_id, collection) for licensee_id, collections in _all_private().items()
               for collection in collections if access(operator, collection).can_read]
    shown = _newest_reports(sources, identity_of(operator))
    audit.note_objects(len(shown))
    return render_template("inbox.html", entries=shown, size=INBOX_SIZE, scan=INBOX_SCAN,
                           targets=rights.broadcast_destinations(_settings(), operator))


def _newest_reports(sources: list, own_identity: str) -> list[tuple]:
    """Reads collections from the one with the newest addition down, and stops at the first
    whose newest addition is older than every report already found: with hundreds of licensees,
    only the busy collections are read."""
    last_added = _store().last_added([collection.id for _, collection in sources])
    found: list[tuple] = []
    for licensee_id, collection in sorted(sources, key=lambda s: last_added.get(s[1].id, 0), reverse=True):
        newest = last_added.get(collection.id)
        if newest is None or (len(found) >= INBOX_SIZE and newest <= found[INBOX_SIZE - 1][0]):
            break
        licensee = _settings().operators[licensee_id]
        for record in _store().recent_versions(collection.id, limit=INBOX_SCAN):
            if record.type in NOT_REPORTS:
                continue
            obj = orjson.loads(record.body)
            if obj.get("created_by_ref") == own_identity:  # a directed alert the regulator sent
                continue
            found.append((record.date_added, record.object_id, licensee, collection, record, obj))
        found.sort(key=lambda entry: entry[0], reverse=True)
        del found[INBOX_SIZE:]
    return found


@blueprint.post("/inbox/republish")
def republish():
    _only_if(can_republish)
    settings = _settings()
    source = rights.readable_collection(settings, _operator(), request.form.get("source", ""))
    targets = {c.id: c for c in rights.broadcast_destinations(settings, _operator())}
    target = targets.get(request.form.get("target", ""))
    object_id = request.form.get("object_id", "")[:300]
    if target is None:
        abort(403, "You may not republish into that collection.")
    try:
        published = publish(settings, _store(), g.principal, object_id, source, target)
    except PublishRefused as refused:
        flash(f"Not republished: {refused}.", "error")
        return redirect(url_for("portal.inbox"))
    audit.note_collection(target.id)
    audit.note_objects(1)
    flash(f"Republished into {target.title} as {published.object_id}.")
    return redirect(url_for("portal.object_page", collection_ref=target.id, object_id=published.object_id))


# -- sightings and false positives -------------------------------------------------------------------------------

@blueprint.get("/sightings")
def sightings():
    _only_if(can_see_compliance)
    rows = sorted(reports.sighting_rows(compliance_service()),
                  key=lambda row: (-row["false_positives"], -row["sightings"], row["indicator_id"]))
    shown = rows[:SIGHTINGS_SHOWN]
    return render_template("sightings.html", rows=shown, total=len(rows), limit=SIGHTINGS_SHOWN,
                           found=_published_indicators([row["indicator_id"] for row in shown]))


def _published_indicators(ids: list[str]) -> dict:
    """indicator id -> (collection, object) for those in a collection the regulator publishes to
    everyone: one query per such collection, for names and links."""
    found: dict = {}
    for collection in rights.broadcast_destinations(_settings(), _operator()) if ids else ():
        records = _store().query(ObjectQuery(collection_id=collection.id, limit=len(ids), ids=tuple(ids))).records
        for record in records:
            found.setdefault(record.object_id, (collection, orjson.loads(record.body)))
    return found


# -- the feed report ---------------------------------------------------------------------------------------------

@blueprint.get("/feed-report")
def feed_report_page():
    _only_if(reads_feed_report)
    rows = feed_report(feed_index(), _settings().collections, limit=FEED_ROWS_PER_COLLECTION)
    audit.note_objects(len(rows))
    return render_template("feed_report.html", rows=rows[:FEED_ENTRIES_SHOWN], total=len(rows), summary=summarize(rows),
                           limit=FEED_ROWS_PER_COLLECTION)
