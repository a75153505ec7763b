"""The application factory: settings + store -> a Flask WSGI application."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Flask, current_app, g, request

from . import audit, limits
from .auth import authenticate
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


def create_app(settings: Settings, store: Store | None = None) -> Flask:
    app = Flask(__name__)
    # TAXII URLs end in "/" (§3.1), but some clients drop it: route both forms
    # instead of answering with a redirect that is not a TAXII response.
    app.url_map.strict_slashes = False
    # An object id with an encoded "/" must reach the handler (and get 404), not a redirect.
    app.url_map.merge_slashes = False
    # Safety net for every route; POST objects checks the limit itself first.
    app.config["MAX_CONTENT_LENGTH"] = settings.max_content_length
    app.extensions["taxii"] = Services(settings, store or open_store(settings.storage_url),
                                       CursorSigner(settings.secret))
    register_error_handlers(app)
    app.before_request(_authenticate_and_negotiate)
    app.after_request(_audit)
    _register_blueprints(app, settings.api_root_path)
    return app


# Served to anyone: the API description holds nothing an operator's key protects.
PUBLIC_ENDPOINTS = frozenset({"openapi.description"})
# Blueprints that authenticate their own requests and answer people in HTML (the
# portal: a sign-in form and a session cookie); the TAXII checks below are not theirs.
SELF_AUTHENTICATED_BLUEPRINTS = frozenset({"portal"})


def _authenticate_and_negotiate() -> None:
    if request.endpoint in PUBLIC_ENDPOINTS or request.blueprint in SELF_AUTHENTICATED_BLUEPRINTS:
        return
    services: Services = app_services()
    g.principal = authenticate(request.headers.get("Authorization"), services.settings, services.store)
    limits.enforce(services.store, g.principal, services.settings.requests_per_minute)
    if not accept_allows_taxii(request.headers.get("Accept")):
        raise TaxiiError(406, "Not acceptable",
                         "This server answers with application/taxii+json;version=2.1; include it in Accept.")


def _audit(response):
    return audit.record(app_services().store, response)


def app_services() -> Services:
    return current_app.extensions["taxii"]


def _register_blueprints(app: Flask, api_root: str) -> None:
    from .api import api_root as api_root_bp
    from .api import collections, discovery, manifest, objects, openapi, status, versions

    app.register_blueprint(discovery.blueprint)
    app.register_blueprint(openapi.blueprint)
    prefix = f"/{api_root}"
    for module in (api_root_bp, status, collections, manifest, objects, versions):
        app.register_blueprint(module.blueprint, url_prefix=prefix)
    from . import portal
    portal.register(app)
