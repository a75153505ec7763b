"""Running the WSGI app under gunicorn from `taxii-server serve`."""

from __future__ import annotations

import os
import ssl

from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import ThreadWorker

from .connections import ReadsHeadsInTheEventLoop, TaxiiErrorPages
from .mtls import ENVIRON_KEY as CLIENT_CERT_ENVIRON_KEY
from .tls import TLSFiles

# The access log line never includes the Authorization header.
ACCESS_LOG_FORMAT = '%(h)s "%(r)s" %(s)s %(b)s %(L)ss'
WORKER_CLASS = "taxii_server.server.ClientCertificateWorker"


class ClientCertificateWorker(TaxiiErrorPages, ReadsHeadsInTheEventLoop, ThreadWorker):
    """gunicorn's gthread worker, which also hands the application the client
    certificate verified during the TLS handshake: PEM, in the WSGI environ
    under SSL_CLIENT_CERT (see mtls.py). Plain HTTP requests, and TLS clients
    that sent no certificate, never have that key.

    It reads request heads (and TLS handshakes) in its event loop, so slow
    clients hold no thread, and answers gunicorn's own errors in TAXII form
    (connections.py)."""

    def load_wsgi(self):
        super().load_wsgi()
        self.wsgi = export_client_certificate(self.wsgi)


def export_client_certificate(app):
    def with_client_certificate(environ, start_response):
        environ.pop(CLIENT_CERT_ENVIRON_KEY, None)
        connection = environ.get("gunicorn.socket")  # gunicorn's own environ entry: the client's socket
        if isinstance(connection, ssl.SSLSocket):
            der = connection.getpeercert(binary_form=True)
            if der:
                environ[CLIENT_CERT_ENVIRON_KEY] = ssl.DER_cert_to_PEM_cert(der)
        return app(environ, start_response)
    return with_client_certificate


class _Gunicorn(BaseApplication):
    def __init__(self, app, options: dict):
        self._app, self._options = app, options
        super().__init__()

    def load_config(self):
        for name, value in self._options.items():
            self.cfg.set(name, value)

    def load(self):
        return self._app


def configure_logging(log_format: str | None = None) -> None:
    """Application log lines (one per request, authentication failures, unexpected errors) on
    stderr beside gunicorn's own, as text or JSON (TAXII_LOG_FORMAT when not given). Nothing
    logged carries a key's secret."""
    from .ops.logs import configure_logging as configure

    configure(log_format or os.environ.get("TAXII_LOG_FORMAT", "text"))


def run_gunicorn(app, bind: str, workers: int = 1, threads: int = 4, tls: TLSFiles | None = None,
                 log_format: str = "text", hooks: dict | None = None) -> None:
    from .ops.logs import logging_config

    configure_logging(log_format)
    # The application's request line (ops/logs.py) replaces gunicorn's access log.
    options = {"bind": bind, "workers": workers, "threads": threads, "worker_class": WORKER_CLASS,
               "accesslog": None, "timeout": 60, "logconfig_dict": logging_config(log_format), **(hooks or {}),
               # gunicorn's control socket sits at one path per user: servers side by side would share it.
               "control_socket_disable": True}
    if tls is not None:
        options.update(tls.gunicorn_options())
    services = app.extensions.get("taxii")
    if services is not None:  # a worker stopping gracefully writes its last second of bookkeeping first
        options["worker_exit"] = lambda arbiter, worker: services.bookkeeper.flush()
    _Gunicorn(app, options).run()
