"""Prometheus metrics, and /metrics for a scrape credential apart from every operator's key.

gunicorn workers are separate processes. `taxii-server serve` points
PROMETHEUS_MULTIPROC_DIR at an emptied folder before anything imports
prometheus_client; every worker then writes its counts to files there, and a
scrape, whichever worker answers it, adds up the files of all of them (and of
workers gone since). Without that variable (the test suite's in-process server)
the counts live in this process.

What is counted comes from the response and from what the handlers noted on
`flask.g` for the audit trail (`audit_collection`, `audit_objects`), plus the
number of objects a POST refused (`note_rejected`). Store sizes are read from the
store when scraped.
"""

from __future__ import annotations

import hmac
import logging
import os
import time

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from ..compliance.metrics import DeliveryLag
from ..errors import TaxiiError, not_found

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
log = logging.getLogger(__name__)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# From a health probe (a millisecond) to a 10 MB POST validated object by object.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

REQUESTS = Counter("taxii_http_requests", "HTTP requests answered, by endpoint, method and status.",
                   ["endpoint", "method", "status"])
LATENCY = Histogram("taxii_http_request_duration_seconds", "Time from request to response, by endpoint and method.",
                    ["endpoint", "method"], buckets=_LATENCY_BUCKETS)
OBJECTS_INGESTED = Counter("taxii_objects_ingested", "Objects accepted by POST (stored, or exact duplicates), "
                           "by collection.", ["collection"])
OBJECTS_REJECTED = Counter("taxii_objects_rejected", "Objects a POST refused (invalid STIX, or another content "
                           "under a stored id and version), by collection.", ["collection"])
OBJECTS_SERVED = Counter("taxii_objects_served", "Objects, manifest entries and versions sent by GET, by collection.",
                         ["collection"])
AUTHENTICATION_FAILURES = Counter("taxii_authentication_failures", "Requests refused with 401.")
RATE_LIMITED = Counter("taxii_rate_limited", "Requests refused with 429: a key past its requests a minute.")

# Delivery lag per licensee is read from the compliance records at each scrape: compliance/metrics.py.


def note_rejected(count: int) -> None:
    """A POST handler's count of the objects it refused, for OBJECTS_REJECTED."""
    g.metrics_rejected = count


def install(app: Flask) -> None:
    app.before_request(_start_clock)
    app.after_request(_count)
    app.register_blueprint(blueprint)


def _start_clock() -> None:
    g.metrics_started = time.perf_counter()


def _count(response: Response) -> Response:
    state, asked = g._get_current_object(), request._get_current_object()  # once, not through the proxies each time
    endpoint = asked.endpoint or "unrouted"  # bounded: the application's endpoints, or this
    method = asked.method if asked.method in _METHODS else "other"
    status = response.status_code
    _child(REQUESTS, endpoint, method, status).inc()
    started = getattr(state, "metrics_started", None)
    if started is not None:
        _child(LATENCY, endpoint, method).observe(time.perf_counter() - started)
    if status == 401:
        AUTHENTICATION_FAILURES.inc()
    elif status == 429:
        RATE_LIMITED.inc()
    collection = getattr(state, "audit_collection", None)  # set only for a collection the caller may see
    if collection is not None:
        _count_objects(state, _collection_label(collection), method, status)
    return response


_children: dict[tuple, object] = {}


def _child(metric, *labels):
    """`metric.labels(*labels)`, looked up once per set of labels: prometheus_client checks
    the labels and takes a lock on every call. The sets are few (endpoints, methods, statuses)."""
    key = (metric, *labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*map(str, labels))
    return child


def _count_objects(state, collection: str, method: str, status: int) -> None:
    objects = getattr(state, "audit_objects", 0)
    if method == "POST" and status == 202:
        _child(OBJECTS_INGESTED, collection).inc(objects)
        _child(OBJECTS_REJECTED, collection).inc(getattr(state, "metrics_rejected", 0))
    elif method == "GET" and status == 200:
        _child(OBJECTS_SERVED, collection).inc(objects)


def _collection_label(collection_id: str) -> str:
    collection = current_app.extensions["taxii"].settings.collection(collection_id)
    return (collection.alias or collection.id) if collection else collection_id


# -- the scrape ---------------------------------------------------------------------------------------

blueprint = Blueprint("metrics", __name__)


@blueprint.get("/metrics")
def scrape() -> Response:
    services = current_app.extensions["taxii"]
    token = services.settings.metrics_token
    if token is None:
        raise not_found("No metrics are served here: configure metrics.scrape_token_file or TAXII_METRICS_TOKEN.")
    if not hmac.compare_digest(_bearer(request.headers.get("Authorization")), token):
        raise TaxiiError(401, "Authentication required", "Send the metrics scrape token as 'Authorization: Bearer "
                         "<token>'; operators' API keys are not accepted here.",
                         {"WWW-Authenticate": 'Bearer realm="metrics"'})
    registry = scrape_registry(services.store, services.settings)
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


def _bearer(authorization: str | None) -> bytes:
    scheme, _, value = (authorization or "").strip().partition(" ")
    return value.strip().encode() if scheme.lower() == "bearer" else b""


def scrape_registry(store, settings) -> CollectorRegistry:
    """Every worker's counts (or this process's), the store's size and the delivery lag, read now."""
    registry = CollectorRegistry()
    if os.environ.get(MULTIPROCESS_ENV):
        MultiProcessCollector(registry)
    else:
        registry.register(_ProcessCounts())
    registry.register(StoreSize(store, settings.collections))
    registry.register(DeliveryLag(settings, store))
    return registry


class _ProcessCounts:
    """The default registry of this one process, inside a registry of our own."""

    def collect(self):
        return REGISTRY.collect()


class StoreSize:
    """Object versions per collection, and bytes on disk, asked of the store at each scrape."""

    def __init__(self, store, collections):
        self._store, self._collections = store, collections

    def collect(self):
        # A store that cannot answer must not take the request counts down with it: those are
        # the figures wanted most then. /readyz says the store is unavailable; the log says why.
        try:
            counts = [(c.alias or c.id, self._store.count_versions(c.id)) for c in self._collections]
            size = self._store.size_bytes()
        except Exception:
            log.warning("metrics: the store did not report its size", exc_info=True)
            return
        versions = GaugeMetricFamily("taxii_store_object_versions", "Object versions held, by collection.",
                                     labels=["collection"])
        for label, count in counts:
            versions.add_metric([label], count)
        yield versions
        if size is not None:
            yield GaugeMetricFamily("taxii_store_size_bytes", "Bytes the store occupies, data and indexes.",
                                    value=size)
