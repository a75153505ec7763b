"""The portal's pages. Each one reads the signed-in operator from the session,
asks rights.py (policy) which collections it may use, and reads and writes
through the store interface only."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

import orjson
from flask import Blueprint, Response, abort, current_app, flash, g, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import BadRequest, HTTPException

from .. import audit, limits
from ..app import app_services
from ..policy import can_republish, can_see_compliance, reads_feed_report
from ..storage.base import ObjectQuery, VersionFilter
from ..errors import TaxiiError
from ..ingest import store_objects
from ..sharing.identities import identity_of
from ..timestamps import now_micros
from ..validation import objects_from_body
from . import authoring, csrf, export, rights, sessions
from .forms import ActionForm, AdvisoryForm, IndicatorsForm, SignInForm, UploadForm, choices
from .listing import Filters, list_objects
from .stix_view import (TLP_BY_MARKING, TLP_LEVELS, references, shown_time, title_of, tlp_of, validity_of,
                        version_order)

blueprint = Blueprint("portal", __name__, template_folder="templates", static_folder="static",
                      static_url_path="/static")

OPEN_ENDPOINTS = frozenset({"portal.sign_in", "portal.static"})
NEWS_SHOWN, NEWS_COUNTED, NEWS_CARDS, NEWS_COUNTS = 5, 20, 6, 40
DOWNLOAD_LIMIT, DOWNLOAD_SCAN_BUDGET = 1_000, 10_000
MAX_VERSIONS_SHOWN, MAX_RELATED = 100, 50
COMMON_TYPES = ("report", "indicator", "malware", "vulnerability", "attack-pattern", "threat-actor", "campaign",
                "identity", "relationship", "sighting", "opinion", "note", "observed-data")


# -- every request ---------------------------------------------------------------------------------------------

@blueprint.before_request
def _session_and_form_token():
    if request.method == "POST":
        csrf.protect()  # CSRFError (400) before anything is read or written
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    signed_in = sessions.current(_store(), _settings())
    if signed_in is None:
        back_to = request.full_path.rstrip("?") if request.method == "GET" else None
        response = redirect(url_for("portal.sign_in", next=back_to))
        sessions.clear_cookie(response, _settings())
        return response
    g.principal, g.portal_session = signed_in.principal, signed_in.session
    # Pages count against the key's requests a minute, as its API calls do.
    limits.enforce_key(app_services().limiter, signed_in.principal.key_id, app_services().key_rate)
    return None


@blueprint.after_request
def _no_caching(response: Response) -> Response:
    # Pages show one operator's data: never kept by shared caches or the browser's history.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = ("default-src 'self'; script-src 'none'; object-src 'none'; "
                                                   "frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
    response.headers["Referrer-Policy"] = "same-origin"
    return response


@blueprint.errorhandler(CSRFError)
def _form_token_refused(error: CSRFError):
    return render_template("error.html", status=400, title="Form refused",
                           message="This form was not sent from a page of this portal, or it has expired. "
                                   "Go back, reload the page and send it again."), 400


@blueprint.errorhandler(HTTPException)
def _http_error(error: HTTPException):
    return render_template("error.html", status=error.code, title=error.name, message=error.description), error.code


@blueprint.errorhandler(TaxiiError)
def _taxii_error(error: TaxiiError):
    return render_template("error.html", status=error.status, title=error.title,
                           message=error.description), error.status, error.headers


@blueprint.context_processor
def _page_context():
    principal = g.get("principal")
    if principal is None:
        return {}
    return {"operator": principal.operator, "action_form": ActionForm(), "shown_time": shown_time,
            "title_of": title_of, "tlp_of": tlp_of, "sees_compliance": can_see_compliance(principal.operator),
            "republishes": can_republish(principal.operator),
            "reads_feed_report": reads_feed_report(principal.operator)}


def _store():
    return app_services().store


def _settings():
    return app_services().settings


def _operator():
    return g.principal.operator


def _all_private() -> dict:
    """Each licensee's private collections (rights.py), worked out once per application:
    the settings they follow from do not change while it runs."""
    cache = current_app.extensions["portal"]
    if "private" not in cache:
        cache["private"] = rights.private_collections_by_licensee(_settings())
    return cache["private"]


def _private_collections() -> list:
    return _all_private().get(_operator().id, [])


# -- signing in and out ----------------------------------------------------------------------------------------

@blueprint.route("/sign-in", methods=["GET", "POST"])
def sign_in():
    form = SignInForm()
    status = 200
    if form.validate_on_submit():
        try:
            started = sessions.sign_in(_store(), app_services().limiter, _settings(), form.operator.data.strip(),
                                       form.key.data)
        except sessions.TooManyAttempts:
            return render_template("sign_in.html", form=form, error="Too many sign-in attempts from your address; "
                                   "wait a minute and try again."), 429, {"Retry-After": "60"}
        if started is not None:
            sessions.sign_out(_store())  # a session this browser held before ends: one session per sign-in
            token, _ = started
            response = redirect(_safe_next(request.args.get("next")))
            sessions.set_cookie(response, token, _settings())
            return response
        form.key.errors.append("This operator id and key do not match a live key.")
        status = 401
    elif request.method == "POST":
        status = 400
    return render_template("sign_in.html", form=form), status


def _safe_next(target: str | None) -> str:
    """Only a path of this portal: never another site (an open redirect)."""
    if target and target.startswith("/portal/") and not urlsplit(target).netloc and "\\" not in target:
        return target
    return url_for("portal.home")


@blueprint.post("/sign-out")
def sign_out():
    sessions.sign_out(_store())
    response = redirect(url_for("portal.sign_in"))
    sessions.clear_cookie(response, _settings())
    flash("You are signed out.")
    return response


# -- for everyone ----------------------------------------------------------------------------------------------

@blueprint.get("/")
def home():
    """Per readable collection, what is new since this key's last visit: the first collections
    with news as cards showing their newest objects, the next ones with a count, any further
    ones by name; one look at every collection's clock finds which have news at all."""
    since = g.portal_session.previous_visit
    collections = rights.readable_collections(_settings(), _operator())
    last_added = _store().last_added([c.id for c in collections])
    cards, counts, more, quiet = [], [], [], []
    for collection in collections:
        if last_added.get(collection.id, 0) <= (since or 0):
            quiet.append(collection)
            continue
        if len(cards) + len(counts) >= NEWS_CARDS + NEWS_COUNTS:
            more.append(collection)
            continue
        # Only a card shows objects: the others need a count, not the bodies.
        records = _store().recent_versions(collection.id, limit=NEWS_COUNTED + 1, since=since,
                                           with_body=len(cards) < NEWS_CARDS)
        entry = {"collection": collection, "count": min(len(records), NEWS_COUNTED),
                 "capped": len(records) > NEWS_COUNTED}
        if not records:  # its newest objects were deleted since
            quiet.append(collection)
        elif len(cards) < NEWS_CARDS:
            entry["shown"] = [(record, orjson.loads(record.body)) for record in records[:NEWS_SHOWN]]
            cards.append(entry)
        else:
            counts.append(entry)
    return render_template("home.html", cards=cards, counts=counts, more=more, quiet=quiet, since=since)


@blueprint.get("/collections/<collection_ref>/")
def collection_page(collection_ref: str):
    collection = rights.readable_collection(_settings(), _operator(), collection_ref)
    audit.note_collection(collection.id)
    filters, before = _listing_request()
    listing = list_objects(_store(), collection.id, filters, before)
    audit.note_objects(len(listing.items))
    return render_template("collection.html", collection=collection, listing=listing, filters=filters,
                           args=_filter_args(), types=COMMON_TYPES, tlp_levels=TLP_LEVELS,
                           download_limit=DOWNLOAD_LIMIT)


@blueprint.get("/collections/<collection_ref>/export.<file_format>")
def collection_export(collection_ref: str, file_format: str):
    if file_format not in ("json", "csv"):
        abort(404)
    collection = rights.readable_collection(_settings(), _operator(), collection_ref)
    audit.note_collection(collection.id)
    filters, before = _listing_request()
    listing = list_objects(_store(), collection.id, filters, before, page_size=DOWNLOAD_LIMIT,
                           scan_budget=DOWNLOAD_SCAN_BUDGET)
    audit.note_objects(len(listing.items))
    name = f"{collection.alias or collection.id}"
    if file_format == "json":
        body, mimetype = export.as_bundle(listing.items), "application/stix+json;version=2.1"
    else:
        body, mimetype = export.as_csv(listing.items), "text/csv; charset=utf-8"
    return Response(body, mimetype=mimetype,
                    headers={"Content-Disposition": f'attachment; filename="{name}.{file_format}"'})


def _listing_request() -> tuple[Filters, int | None]:
    args = request.args
    type_ = args.get("type", "")
    tlp = args.get("tlp", "")
    if tlp and tlp not in (*TLP_LEVELS, "none"):
        raise BadRequest("Unknown TLP level.")
    if type_ and not (len(type_) <= 250 and all(c.isalnum() or c == "-" for c in type_)):
        raise BadRequest("A STIX type is made of letters, digits and hyphens.")
    return Filters(types=(type_,) if type_ else (), tlp=tlp, text=args.get("q", "").strip()[:200],
                   added_from=_day(args.get("from"), 0), added_until=_day(args.get("until"), 86_400_000_000 - 1)), \
        _integer(args.get("before"))


def _filter_args() -> dict:
    return {name: request.args[name] for name in ("type", "tlp", "q", "from", "until") if request.args.get(name)}


def _day(text: str | None, offset: int) -> int | None:
    if not text:
        return None
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"{text[:40]!r} is not a date (YYYY-MM-DD).") from None
    midnight = dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)
    return int(midnight.timestamp()) * 1_000_000 + offset


def _integer(text: str | None) -> int | None:
    if not text:
        return None
    if not text.isdigit() or len(text) > 19:
        raise BadRequest("The page position is not valid.")
    return int(text)


@blueprint.get("/collections/<collection_ref>/objects/<object_id>/")
def object_page(collection_ref: str, object_id: str):
    collection = rights.readable_collection(_settings(), _operator(), collection_ref)
    audit.note_collection(collection.id)
    store = _store()
    versions = store.query(ObjectQuery(collection_id=collection.id, limit=MAX_VERSIONS_SHOWN, object_id=object_id,
                                       versions=VersionFilter.every())).records
    if not versions:
        abort(404, "No object with this id is in the collection.")
    [latest] = store.query(ObjectQuery(collection_id=collection.id, limit=1, object_id=object_id)).records
    obj = orjson.loads(latest.body)
    refs = references(obj)
    found = store.query(ObjectQuery(collection_id=collection.id, limit=MAX_RELATED,
                                    ids=tuple({ref for _, ref in refs[:MAX_RELATED]}))).records if refs else []
    related = {record.object_id: orjson.loads(record.body) for record in found}
    audit.note_objects(len(versions))
    operator = _operator()
    return render_template(
        "object.html", collection=collection, obj=obj, latest=latest,
        timeline=sorted(versions, key=lambda r: version_order(r.version), reverse=True),
        refs=refs, related=related, validity=validity_of(obj), tlp_markings=TLP_BY_MARKING,
        raw=orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode(),
        can_acknowledge=_acknowledgeable(collection, obj),
        share_to=[c for c in rights.broadcast_destinations(_settings(), operator) if c.id != collection.id])


def _acknowledgeable(collection, obj: dict) -> bool:
    """Licensees acknowledge what the regulator sends them: an advisory report, or
    any object of a collection they read but do not write."""
    operator = _operator()
    if operator.role != "licensee" or obj.get("type") in ("opinion", "note"):
        return False
    if not _private_collections():
        return False
    sent_to_them = collection not in rights.writable_collections(_settings(), operator)
    return sent_to_them or obj.get("type") == "report"


# -- for licensees -----------------------------------------------------------------------------------------------

@blueprint.post("/collections/<collection_ref>/objects/<object_id>/acknowledge")
def acknowledge(collection_ref: str, object_id: str):
    collection = rights.readable_collection(_settings(), _operator(), collection_ref)
    latest = _latest(collection.id, object_id)
    if not _acknowledgeable(collection, orjson.loads(latest.body)):
        abort(403, "Only a licensee acknowledges what it was sent.")
    [destination] = _private_collections()[:1]
    opinion = authoring.acknowledgement(object_id, _operator().name, created_by_ref=identity_of(_operator()))
    if _store_and_report([opinion], destination):
        flash(f"Acknowledged: an opinion “agree” is stored in {destination.title}.")
    return redirect(url_for("portal.object_page", collection_ref=collection_ref, object_id=object_id))


@blueprint.post("/collections/<collection_ref>/objects/<object_id>/share")
def share(collection_ref: str, object_id: str):
    collection = rights.readable_collection(_settings(), _operator(), collection_ref)
    destinations = {c.id: c for c in rights.broadcast_destinations(_settings(), _operator())}
    destination = destinations.get(request.form.get("destination", ""))
    if destination is None or destination.id == collection.id:
        abort(403, "You may not share into that collection.")
    latest = _latest(collection.id, object_id)
    if _store_and_report([orjson.loads(latest.body)], destination):
        flash(f"Shared into {destination.title}.")
    return redirect(url_for("portal.object_page", collection_ref=destination.id, object_id=object_id))


@blueprint.route("/report", methods=["GET", "POST"])
def report_finding():
    destinations = rights.writable_collections(_settings(), _operator())
    if _operator().role != "licensee" or not destinations:
        abort(403, "Reporting a finding is for licensees.")
    private = _private_collections()
    ordered = private + [c for c in destinations if c not in private]
    form = IndicatorsForm()
    form.destination.choices = choices((c.id, c.title) for c in ordered)
    return _indicators_page(form, "Report a finding", advisory=False)


@blueprint.route("/upload", methods=["GET", "POST"])
def upload():
    destinations = rights.writable_collections(_settings(), _operator())
    if not destinations:
        abort(403, "You may not add objects to any collection.")
    form = UploadForm()
    form.destination.choices = choices((c.id, c.title) for c in destinations)
    if form.validate_on_submit():
        destination = rights.writable_collection(_settings(), _operator(), form.destination.data)
        try:
            items = objects_from_body(form.bundle.data.read(_settings().max_content_length + 1))
        except TaxiiError as refused:
            form.bundle.errors.append(refused.description)
        else:
            if _store_and_report(items, destination):
                return redirect(url_for("portal.collection_page", collection_ref=destination.id))
    return render_template("upload.html", form=form), 400 if request.method == "POST" else 200


# -- for the regulator -----------------------------------------------------------------------------------------

@blueprint.route("/publish", methods=["GET", "POST"])
def publish():
    operator = _operator()
    if operator.role != "regulator":
        abort(403, "Publishing advisories is for the regulator.")
    form = AdvisoryForm()
    form.destination.choices = choices(
        [(c.id, f"Everyone: {c.title}") for c in rights.broadcast_destinations(_settings(), operator)]
        + [(c.id, f"Only {licensee.name}: {c.title}")
           for licensee, c in rights.directed_destinations(_settings(), operator, _all_private())])
    return _indicators_page(form, "Publish an advisory", advisory=True)


# -- shared by the forms -----------------------------------------------------------------------------------------

def _indicators_page(form: IndicatorsForm, heading: str, advisory: bool):
    if form.validate_on_submit():
        destination = rights.writable_collection(_settings(), _operator(), form.destination.data)
        values, problems = authoring.parse_values(form.values.data, form.kind.data)
        form.values.errors.extend(problems)
        if values and not problems:
            details = authoring.Details(
                name=form.name.data.strip(), description=form.description.data.strip(), tlp=form.tlp.data,
                valid_from=_day(form.valid_from.data.isoformat(), 0) if form.valid_from.data else now_micros(),
                valid_until=(_day(form.valid_until.data.isoformat(), 86_400_000_000 - 1)
                             if form.valid_until.data else None),
                created_by_ref=identity_of(_operator()))
            made = authoring.indicators(form.kind.data, values, details)
            if advisory:
                made.append(authoring.advisory(details, made))
            if _store_and_report(made, destination):
                return redirect(url_for("portal.collection_page", collection_ref=destination.id))
    status = 400 if request.method == "POST" else 200
    return render_template("indicators_form.html", form=form, heading=heading, advisory=advisory), status


def _store_and_report(items: list[dict], destination) -> bool:
    """Store as a TAXII POST does; flash the outcome. True when every object was stored."""
    report = store_objects(app_services(), g.principal, destination, lambda: items, now_micros())
    audit.note_collection(destination.id)
    audit.note_objects(report.success_count)
    status = orjson.loads(report.record.body)
    for failure in status.get("failures", [])[:20]:
        flash(f"Not stored: {failure['id']}: {failure['message']}", "error")
    if report.success_count:
        flash(f"{report.success_count} object(s) stored in {destination.title}.")
    return not status.get("failures")


def _latest(collection_id: str, object_id: str):
    records = _store().query(ObjectQuery(collection_id=collection_id, limit=1, object_id=object_id)).records
    if not records:
        abort(404, "No object with this id is in the collection.")
    return records[0]
