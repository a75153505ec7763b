"""The WSGI entry point for gunicorn: `gunicorn 'taxii_server.wsgi:app'`.

Reads the configuration named by TAXII_CONFIG (default ./config.yaml).
"""

import os

from .app import create_app
from .config import load_settings
from .server import configure_logging

configure_logging()
app = create_app(load_settings(os.environ.get("TAXII_CONFIG", "config.yaml")))
