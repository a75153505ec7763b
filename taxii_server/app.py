"""The application factory: settings + store -> a Flask WSGI application."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Flask, current_app, g, request

from . import audit, limits, ops
from .auth import authenticate
from .bookkeeping import Bookkeeper
from .compliance import http as compliance
from .config import Settings
from .errors import TaxiiError, register_error_handlers
from .media import accept_allows_taxii
from .query import CursorSigner
from .storage import open_store
from .storage.base import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Services:
    """What the request handlers need, built once per process."""

    settings: Settings
    store: Store
    cursors: CursorSigner
    # The request path's bookkeeping, written off the request path (bookkeeping.py).
    limiter: limits.Limiter
    audit: audit.AuditBuffer
    bookkeeper: Bookkeeper
    key_rate: limits.Rate | None
    failed_authentication_rate: limits.Rate | None


def create_app(settings: Settings, store: Store | None = None) -> Flask:
    app = Flask(__name__)
    # TAXII URLs end in "/" (§3.1), but some clients drop it: route both forms
    # instead of answering with a redirect that is not a TAXII response.
    app.url_map.strict_slashes = False
    # An object id with an encoded "/" must reach the handler (and get 404), not a redirect.
    app.url_map.merge_slashes = False
    # Safety net for every route; POST objects checks the limit itself first.
    app.config["MAX_CONTENT_LENGTH"] = settings.max_content_length
    app.extensions["taxii"] = _services(settings, store or open_store(settings.storage_url))
    register_error_handlers(app)
    ops.install(app)  # first: the request id and the clock start before authentication may end the request
    app.before_request(_authenticate_and_negotiate)
    app.after_request(_audit)
    app.teardown_request(_end_reading)
    _register_blueprints(app, settings.api_root_path)
    compliance.install(app, settings, app.extensions["taxii"].store)
    return app


def _services(settings: Settings, store: Store) -> Services:
    trail = audit.AuditBuffer(store)
    limiter = limits.Limiter(store, pay_soon=lambda: bookkeeper.run_soon(limiter.reconcile))
    # Audit records first: a failing rate-limit payment must not hold them back.
    bookkeeper = Bookkeeper([trail.flush, limiter.reconcile])
    key_rate = (limits.Rate(settings.requests_per_minute, settings.rate_burst or settings.requests_per_minute)
                if settings.requests_per_minute else None)
    failures = settings.failed_authentications_per_minute
    return Services(settings, store, CursorSigner(settings.secret), limiter, trail, bookkeeper, key_rate,
                    limits.Rate(failures, failures) if failures else None)


# Authenticated like TAXII, but plain lists for firewalls: no TAXII media negotiation.
PLAIN_TEXT_BLUEPRINTS = frozenset({"feeds"})
# Served to anyone: the API description holds nothing an operator's key protects; the health
# probes say only "ok" or "unavailable"; /metrics checks a scrape credential of its own.
PROBES = frozenset({"health.live", "health.ready", "metrics.scrape"})
PUBLIC_ENDPOINTS = frozenset({"openapi.description", *PROBES})
# Blueprints that authenticate their own requests and answer people in HTML (the
# portal: a sign-in form and a session cookie); the TAXII checks below are not theirs.
SELF_AUTHENTICATED_BLUEPRINTS = frozenset({"portal"})


def _authenticate_and_negotiate() -> None:
    services: Services = app_services()
    services.bookkeeper.ensure_running()
    if request.endpoint in PUBLIC_ENDPOINTS or request.blueprint in SELF_AUTHENTICATED_BLUEPRINTS:
        return
    # One look at whether the store changed serves the request's key and page reads (storage/page_cache.py).
    services.store.begin_reading()
    try:
        g.principal = authenticate(request.headers.get("Authorization"), services.settings, services.store)
    except TaxiiError as refused:
        if refused.status == 401:
            _limit_failed_authentications(services)
        raise
    limits.enforce_key(services.limiter, g.principal.key_id, services.key_rate)
    if request.blueprint not in PLAIN_TEXT_BLUEPRINTS and not accept_allows_taxii(request.headers.get("Accept")):
        raise TaxiiError(406, "Not acceptable",
                         "This server answers with application/taxii+json;version=2.1; include it in Accept.")


def _end_reading(_error) -> None:
    app_services().store.end_reading()


def _limit_failed_authentications(services: Services) -> None:
    """Past its allowance of failed authentications, an address gets 429, and the
    key ids it tries are no longer recorded: its refusals are only counted."""
    wait = limits.failed_authentication_allowed(services.limiter, request.remote_addr or "",
                                                services.failed_authentication_rate)
    if wait is not None:
        g.audit_hide_key_id = True
        raise limits.too_many(wait, f"Too many failed authentications from this address; try again in {wait} s.")


def _audit(response):
    # Probes come every few seconds from machines, not operators: a row each would bury the trail.
    if request.endpoint in PROBES:
        return response
    return audit.record(app_services().audit, response)


def app_services() -> Services:
    return current_app.extensions["taxii"]


def _register_blueprints(app: Flask, api_root: str) -> None:
    from .api import api_root as api_root_bp
    from .api import collections, discovery, manifest, objects, openapi, status, versions
    from .sharing import http as sharing_http

    app.register_blueprint(discovery.blueprint)
    app.register_blueprint(openapi.blueprint)
    prefix = f"/{api_root}"
    for module in (api_root_bp, status, collections, manifest, objects, versions, sharing_http):
        app.register_blueprint(module.blueprint, url_prefix=prefix)
    from .feeds import http as feeds
    app.register_blueprint(feeds.blueprint)
    from . import portal
    portal.register(app)
