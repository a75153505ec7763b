"""Shared fixtures: a configured deployment on a temporary store, keys for
each operator, and the server listening on a real loopback socket.

The store is SQLite unless a module is marked `every_backend`: its tests then
run once per backend in tests/backends.py, through HTTP as a client sees them."""

from __future__ import annotations

import json
import socket
import threading
import uuid
from pathlib import Path

import pytest
import requests
import yaml
from backends import BACKENDS, discard
from werkzeug.serving import make_server

from taxii_server.app import create_app
from taxii_server.config import load_settings
from taxii_server.keys import issue_key
from taxii_server.storage import open_store

REPO = Path(__file__).resolve().parent.parent
TAXII = "application/taxii+json;version=2.1"
OPERATORS = [
    {"id": "regulator", "name": "Regulator CERT", "role": "regulator"},
    {"id": "northtel", "name": "NorthTel", "role": "licensee"},
    {"id": "southwave", "name": "SouthWave", "role": "licensee"},
]
ADVISORIES = "886accab-6aad-41e0-b0f9-98a3056fa25d"
COMMUNITY = "ac073309-7ac3-4570-9b7d-67d91b476f95"


def write_config(folder: Path, **overrides) -> Path:
    """A config.yaml using the shipped collections/ and, unless `storage` is given, a store inside `folder`."""
    config = {
        "title": "Test exchange",
        "storage": "sqlite:///taxii.sqlite3",
        "secret_file": "server.secret",
        "collections_dir": str(REPO / "collections"),
        "api_root": {"path": "api", "title": "Test root", "max_content_length": 65536},
        "paging": {"default_limit": 50, "max_limit": 200},
        "operators": OPERATORS,
    }
    config.update(overrides)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def pytest_generate_tests(metafunc):
    if "storage_url" in metafunc.fixturenames and metafunc.definition.get_closest_marker("every_backend"):
        metafunc.parametrize("storage_url", sorted(BACKENDS), indirect=True)


@pytest.fixture
def storage_url(request, tmp_path) -> str:
    url = BACKENDS[getattr(request, "param", "sqlite")](tmp_path)
    yield url
    discard(url)


@pytest.fixture
def config_path(tmp_path, storage_url) -> Path:
    return write_config(tmp_path, storage=storage_url)


@pytest.fixture
def settings(config_path):
    return load_settings(config_path, environ={})


@pytest.fixture
def store(settings):
    store = open_store(settings.storage_url)
    yield store
    store.close()


@pytest.fixture
def keys(settings, store) -> dict[str, str]:
    """One fresh API key per operator, by operator id."""
    return {op["id"]: issue_key(store, settings.secret, op["id"]).raw_key for op in OPERATORS}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago, for a server in a subprocess."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LiveServer:
    """The application served by a real WSGI server on 127.0.0.1."""

    def __init__(self, app):
        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        # A short poll interval keeps shutdown (once per test) quick.
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def stop(self):
        self._server.shutdown()
        self._thread.join()


@pytest.fixture
def app(settings, store):
    return create_app(settings, store)


@pytest.fixture
def server(app):
    live = LiveServer(app)
    yield live
    live.stop()


class TaxiiSession:
    """requests, speaking TAXII 2.1 as one operator (Bearer key by default)."""

    def __init__(self, base_url: str, key: str | None, operator: str | None = None, scheme: str = "bearer"):
        self.base = base_url
        self.api = f"{base_url}/api"
        self.http = requests.Session()
        self.http.headers["Accept"] = TAXII
        if key is not None:
            if scheme == "basic":
                self.http.auth = (operator, key)
            else:
                self.http.headers["Authorization"] = f"{scheme.capitalize()} {key}"

    def get(self, path: str, **kwargs):
        return self.http.get(self._url(path), **kwargs)

    def delete(self, path: str, **kwargs):
        return self.http.delete(self._url(path), **kwargs)

    def post(self, path: str, body, **kwargs):
        headers = {"Content-Type": TAXII, **kwargs.pop("headers", {})}
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        return self.http.post(self._url(path), data=data, headers=headers, **kwargs)

    def _url(self, path: str) -> str:
        return path if path.startswith("http") else self.api + path


@pytest.fixture
def as_operator(server, keys):
    """as_operator("northtel") -> a TaxiiSession authenticated as that operator."""
    def make(operator_id: str, scheme: str = "bearer") -> TaxiiSession:
        return TaxiiSession(server.url, keys[operator_id], operator_id, scheme)
    return make


@pytest.fixture
def regulator(as_operator) -> TaxiiSession:
    return as_operator("regulator")


@pytest.fixture
def northtel(as_operator) -> TaxiiSession:
    return as_operator("northtel")


@pytest.fixture
def southwave(as_operator) -> TaxiiSession:
    return as_operator("southwave")


def indicator(n: int = 0, modified: str = "2026-01-01T00:00:00.000Z", **extra) -> dict:
    """A valid STIX 2.1 indicator; `n` picks a stable id."""
    return {
        "type": "indicator",
        "spec_version": "2.1",
        "id": f"indicator--{uuid.UUID(int=n, version=4)}",
        "created": "2026-01-01T00:00:00.000Z",
        "modified": modified,
        "name": f"test indicator {n}",
        "pattern": f"[ipv4-addr:value = '198.51.100.{n % 256}']",
        "pattern_type": "stix",
        "valid_from": "2026-01-01T00:00:00Z",
        **extra,
    }


def envelope(*objects: dict) -> dict:
    return {"objects": list(objects)}
