"""Running the WSGI app under gunicorn from `taxii-server serve`."""

from __future__ import annotations

import logging

from gunicorn.app.base import BaseApplication


class _Gunicorn(BaseApplication):
    def __init__(self, app, options: dict):
        self._app, self._options = app, options
        super().__init__()

    def load_config(self):
        for name, value in self._options.items():
            self.cfg.set(name, value)

    def load(self):
        return self._app


def configure_logging() -> None:
    """Application log lines (authentication failures, unexpected errors) on stderr
    beside gunicorn's own. Nothing logged carries a key's secret."""
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s")


def run_gunicorn(app, bind: str, workers: int = 1, threads: int = 4) -> None:
    configure_logging()
    options = {"bind": bind, "workers": workers, "threads": threads, "worker_class": "gthread",
               "accesslog": "-", "timeout": 60,
               # The access log line never includes the Authorization header.
               "access_log_format": '%(h)s "%(r)s" %(s)s %(b)s %(L)ss'}
    _Gunicorn(app, options).run()
