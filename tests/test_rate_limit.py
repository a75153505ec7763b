"""Per-key rate limits: past the configured burst and rate, 429 with Retry-After."""

import pytest

from conftest import COMMUNITY, REPO, LiveServer, TaxiiSession, write_config
from taxii_server.app import create_app
from taxii_server.config import load_settings
from taxii_server.keys import issue_key
from taxii_server.storage import open_store


# Every case runs once per storage backend.
pytestmark = pytest.mark.every_backend

LIMIT = 5


@pytest.fixture
def limited(tmp_path, storage_url):
    """A server allowing each key LIMIT requests a minute, and a key factory."""
    settings = load_settings(write_config(tmp_path, storage=storage_url, rate_limit={"requests_per_minute": LIMIT}),
                             environ={})
    store = open_store(settings.storage_url)
    live = LiveServer(create_app(settings, store))
    yield live, lambda operator: TaxiiSession(live.url, issue_key(store, settings.secret, operator).raw_key)
    live.stop()
    store.close()


def requests_until_refused(session, most=LIMIT + 1):
    return [session.get(f"/collections/{COMMUNITY}/objects/") for _ in range(most)]


def test_a_key_past_its_limit_gets_429_with_retry_after_and_a_taxii_error(limited):
    _, key_for = limited
    responses = requests_until_refused(key_for("northtel"))

    assert [r.status_code for r in responses] == [200] * LIMIT + [429]
    refused = responses[-1]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["Content-Type"] == "application/taxii+json;version=2.1"
    assert refused.json()["http_status"] == "429"


def test_the_limit_is_per_key_so_another_key_of_the_same_operator_still_works(limited):
    _, key_for = limited
    requests_until_refused(key_for("northtel"))
    assert key_for("northtel").get("/collections/").status_code == 200


def test_rate_state_is_shared_by_every_process_through_the_store(tmp_path, storage_url):
    settings = load_settings(write_config(tmp_path, storage=storage_url), environ={})
    first, second = open_store(settings.storage_url), open_store(settings.storage_url)
    now = 1_000
    assert first.spend_rate({"key:a": (now, 10)}, now) == {"key:a": 1_010}
    assert second.spend_rate({"key:a": (now, 10)}, now) == {"key:a": 1_020}
    assert first.spend_rate({"key:a": (now, 0)}, now) == {"key:a": 1_020}  # reading costs nothing
    assert second.spend_rate({"key:a": (5_000, 10)}, now) == {"key:a": 5_010}  # a quiet bucket starts afresh


def test_without_a_configured_limit_nothing_is_refused(as_operator):
    northtel = as_operator("northtel")
    assert {northtel.get("/collections/").status_code for _ in range(3 * LIMIT)} == {200}


def test_the_shipped_configuration_sets_a_limit():
    environ = {"TAXII_SERVER_SECRET": "x" * 32, "TAXII_STORAGE_URL": "sqlite:///:memory:"}
    shipped = load_settings(REPO / "config.yaml", environ=environ)
    assert (shipped.requests_per_minute, shipped.rate_burst) == (600, 12000)
