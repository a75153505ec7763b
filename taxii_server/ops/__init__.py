"""Running the server as a service: health probes, metrics, structured logs, backups.

`install` puts the per-request parts around the TAXII application; each lives in
its own module and reads what the request left on `flask.g`, never the handlers.
"""

from __future__ import annotations

from flask import Flask


def install(app: Flask) -> None:
    """Request ids, the request log and metrics around every request; /healthz, /readyz and /metrics.

    Call before the application registers its own hooks: the request id and the
    clock must start before authentication, which may end the request."""
    # Imported here, not above: `serve` imports this package before it sets up the
    # metrics folder, and prometheus_client must not be imported before that.
    from . import health, logs, metrics

    logs.install(app)
    metrics.install(app)
    app.register_blueprint(health.blueprint)
