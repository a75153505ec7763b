"""Health probes for load balancers and orchestrators, served without credentials.

    GET /healthz   200 while the process answers HTTP at all (liveness)
    GET /readyz    200 when the store answers a query within READY_DEADLINE seconds
                   (on MongoDB, with a primary in the replica set); 503 otherwise (readiness)

Both answer `{"status": ...}` and nothing else: no version, no store URL, no reason.
The reason a store is not ready goes to the log, for the people who run it.
"""

from __future__ import annotations

import orjson
from flask import Blueprint, Response, current_app

blueprint = Blueprint("health", __name__)

# Below the probe timeouts we document (Kubernetes timeoutSeconds: 3, the Dockerfile's --timeout=5s).
READY_DEADLINE = 2.0


@blueprint.get("/healthz")
def live() -> Response:
    return _status(200, "ok")


@blueprint.get("/readyz")
def ready() -> Response:
    store = current_app.extensions["taxii"].store
    return _status(200, "ok") if store.ready(READY_DEADLINE) else _status(503, "unavailable")


def _status(code: int, status: str) -> Response:
    response = Response(orjson.dumps({"status": status}), status=code, content_type="application/json")
    response.headers["Cache-Control"] = "no-store"  # a proxy must not answer a probe from its cache
    return response
