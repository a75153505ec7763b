"""TAXII error resources (§3.6.1) and the exceptions that produce them.

Every failure leaves the server as an `error` resource whose `http_status`
equals the HTTP status, with the TAXII media type, whatever raised it.
"""

from __future__ import annotations

import logging

import orjson
from flask import Flask, Response
from werkzeug.exceptions import HTTPException

from .media import TAXII_MEDIA_TYPE
from .storage.base import StoreBusy

log = logging.getLogger(__name__)

# Seconds a client is asked to wait when the store is busy: writes are short, the lock is soon free.
BUSY_RETRY_AFTER = 2


class TaxiiError(Exception):
    """A request that ends with a TAXII error resource."""

    def __init__(self, status: int, title: str, description: str | None = None, headers: dict | None = None):
        super().__init__(title)
        self.status = status
        self.title = title
        self.description = description
        self.headers = headers or {}


def bad_request(description: str) -> TaxiiError:
    return TaxiiError(400, "Bad request", description)


def not_found(description: str = "The requested resource does not exist or you have no access to it.") -> TaxiiError:
    return TaxiiError(404, "Not found", description)


def forbidden(description: str) -> TaxiiError:
    return TaxiiError(403, "Forbidden", description)


def unprocessable(description: str) -> TaxiiError:
    return TaxiiError(422, "Unprocessable content", description)


def error_response(status: int, title: str, description: str | None = None, headers: dict | None = None) -> Response:
    body = {"title": title, "http_status": str(status)}
    if description:
        body["description"] = description
    response = Response(orjson.dumps(body), status=status, content_type=TAXII_MEDIA_TYPE)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(TaxiiError)
    def _taxii_error(error: TaxiiError):
        return error_response(error.status, error.title, error.description, error.headers)

    @app.errorhandler(StoreBusy)
    def _store_busy(error: StoreBusy):
        log.warning("store busy: %s", error)
        return error_response(503, "Service unavailable", "The store is busy; nothing was changed. Try again shortly.",
                              {"Retry-After": str(BUSY_RETRY_AFTER)})

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        # Routing failures (unknown URL, wrong method, body too large) from Werkzeug.
        headers = {}
        if getattr(error, "valid_methods", None):
            headers["Allow"] = ", ".join(error.valid_methods)
        return error_response(error.code or 500, error.name, error.description, headers)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        log.exception("unhandled error while serving a request")
        return error_response(500, "Internal server error", "The server could not complete the request.")
