"""Rate limits that let a first sync through: a quiet key may make `burst`
requests at once, and a key that floods without end is held to its rate.

The shipped numbers are checked with the limiter and the real store in this
process (10,000+ requests over HTTP would take minutes here); the same
behaviour is then checked over HTTP, at a smaller scale, with taxii2-client's
own pager, which never retries a 429."""

from itertools import islice

import pytest
import requests
from taxii2client.common import TokenAuth
from taxii2client.v21 import ApiRoot, as_pages

from conftest import COMMUNITY, REPO, LiveServer, TaxiiSession, envelope, indicator, write_config
from taxii_server.app import create_app
from taxii_server.config import load_settings
from taxii_server.keys import issue_key
from taxii_server.limits import LOCAL_SLACK, MINUTE, Limiter, Rate
from taxii_server.storage import open_store

pytestmark = pytest.mark.every_backend

SHIPPED = load_settings(REPO / "config.yaml", environ={"TAXII_SERVER_SECRET": "x" * 32,
                                                       "TAXII_STORAGE_URL": "sqlite:///:memory:"})
SHIPPED_RATE = Rate(SHIPPED.requests_per_minute, SHIPPED.rate_burst)
FIRST_SYNC_PAGES = 10_000


class Clock:
    """Time for the limiter, moved by the test: minutes of flooding run in milliseconds."""

    def __init__(self, start: int = 1_800_000_000_000_000):
        self.now = start

    def __call__(self) -> int:
        return self.now

    def advance(self, micros: int) -> None:
        self.now += micros


@pytest.fixture
def shared_store(tmp_path, storage_url):
    """The deployment's store, as each server process opens it."""
    settings = load_settings(write_config(tmp_path, storage=storage_url), environ={})
    stores = []

    def open_one():
        stores.append(open_store(settings.storage_url))
        return stores[-1]
    yield open_one
    for store in stores:
        store.close()


def test_the_shipped_burst_covers_a_first_sync_of_a_million_objects_at_the_default_page_size():
    assert SHIPPED.default_limit * FIRST_SYNC_PAGES >= 1_000_000
    assert SHIPPED_RATE.burst >= FIRST_SYNC_PAGES


def test_a_first_sync_of_10000_pages_in_a_burst_meets_no_429_under_the_shipped_limits(shared_store):
    clock = Clock()
    limiter = Limiter(shared_store(), clock)
    refused = []
    for page in range(FIRST_SYNC_PAGES + 500):
        clock.advance(1_000)  # a fast client on a fast link: 1,000 pages a second
        if limiter.admit("key:sync", SHIPPED_RATE) is not None:
            refused.append(page)
    assert refused == []


def test_a_first_sync_spread_over_two_server_processes_meets_no_429_either(shared_store):
    clock = Clock()
    workers = [Limiter(shared_store(), clock), Limiter(shared_store(), clock)]
    refused = 0
    for page in range(FIRST_SYNC_PAGES):
        clock.advance(1_000)
        refused += workers[page % 2].admit("key:sync", SHIPPED_RATE) is not None
    assert refused == 0


def flood(limiters, clock: Clock, seconds: int, per_second: int) -> int:
    """A key asking `per_second` times a second for `seconds`, spread over the
    processes, each paying its admissions to the store every second as the
    bookkeeping thread does; how many were admitted."""
    admitted = 0
    for _ in range(seconds):
        for n in range(per_second):
            clock.advance(1_000_000 // per_second)
            admitted += limiters[n % len(limiters)].admit("key:flood", SHIPPED_RATE) is None
        for limiter in limiters:
            limiter.reconcile()
    return admitted


def test_a_key_that_floods_without_end_is_held_to_its_sustained_rate(shared_store):
    clock = Clock()
    limiter = Limiter(shared_store(), clock)
    burst_spent = flood([limiter], clock, seconds=60, per_second=250)
    assert SHIPPED_RATE.burst <= burst_spent <= SHIPPED_RATE.burst + SHIPPED_RATE.per_minute
    later = flood([limiter], clock, seconds=300, per_second=250)  # five more minutes of flooding
    assert later == pytest.approx(5 * SHIPPED_RATE.per_minute, abs=2)


def test_across_processes_the_limit_holds_within_the_documented_slack(shared_store):
    clock = Clock()
    processes = [Limiter(shared_store(), clock) for _ in range(3)]
    first_minute = flood(processes, clock, seconds=60, per_second=300)
    # The burst and a minute of rate, plus at most LOCAL_SLACK per process before each hears it is spent.
    assert first_minute <= SHIPPED_RATE.burst + SHIPPED_RATE.per_minute + len(processes) * LOCAL_SLACK
    later = flood(processes, clock, seconds=300, per_second=300)
    # Every admission is paid to the store, so any overshoot is owed back: the rate holds over time.
    assert later <= 5 * SHIPPED_RATE.per_minute + len(processes) * LOCAL_SLACK
    assert first_minute + later <= SHIPPED_RATE.burst + 6 * SHIPPED_RATE.per_minute + len(processes) * LOCAL_SLACK


def test_a_quiet_key_gets_its_burst_back_at_the_sustained_rate(shared_store):
    clock = Clock()
    limiter = Limiter(shared_store(), clock)
    flood([limiter], clock, seconds=60, per_second=250)
    clock.advance(MINUTE)  # a quiet minute earns back one minute's rate
    regained = sum(limiter.admit("key:flood", SHIPPED_RATE) is None for _ in range(2 * SHIPPED_RATE.per_minute))
    assert regained == pytest.approx(SHIPPED_RATE.per_minute, abs=2)


# -- over HTTP ---------------------------------------------------------------------------------------

RATE, BURST, PAGES = 60, 300, 240


@pytest.fixture
def limited_server(tmp_path, storage_url):
    """A server whose keys may make BURST requests at once, then RATE a minute."""
    settings = load_settings(write_config(tmp_path, storage=storage_url,
                                          rate_limit={"requests_per_minute": RATE, "burst": BURST}), environ={})
    store = open_store(settings.storage_url)
    app = create_app(settings, store)
    live = LiveServer(app)
    yield live, settings, store
    live.stop()
    store.close()


def test_taxii2_client_pages_through_a_first_sync_in_a_burst_then_a_flood_gets_429_with_retry_after(limited_server):
    live, settings, store = limited_server
    publisher = TaxiiSession(live.url, issue_key(store, settings.secret, "regulator").raw_key)
    for start in range(0, PAGES, 80):  # within the test deployment's 64 KiB bodies
        published = publisher.post(f"/collections/{COMMUNITY}/objects/",
                                   envelope(*[indicator(n) for n in range(start, start + 80)]))
        assert published.status_code == 202
    poller_key = issue_key(store, settings.secret, "northtel").raw_key
    root = ApiRoot(f"{live.url}/api/", auth=TokenAuth(poller_key))
    community = next(c for c in root.collections if c.id == COMMUNITY)  # two requests: api root, collections

    # One object a page: PAGES page requests in a row, as fast as the client goes; any 429 would raise.
    pages = list(islice(as_pages(community.get_objects, per_request=1), PAGES + 1))
    assert len(pages) == PAGES and not pages[-1]["more"]

    flood = TaxiiSession(live.url, poller_key)
    answers = [flood.get(f"/collections/{COMMUNITY}/objects/", params={"limit": 1}) for _ in range(BURST)]
    refused = [answer for answer in answers if answer.status_code == 429]
    assert refused, "a key past its burst must be refused"
    assert all(1 <= int(answer.headers["Retry-After"]) <= 60 for answer in refused)
    assert refused[0].json()["http_status"] == "429"
    # No more got through than the burst and what the rate earned back meanwhile (well under a minute).
    assert 2 + PAGES + len(answers) - len(refused) <= BURST + RATE


def test_over_http_a_refused_key_is_answered_from_the_limit_alone(limited_server):
    live, settings, store = limited_server
    key = issue_key(store, settings.secret, "southwave").raw_key
    http = requests.Session()
    http.headers.update({"Authorization": f"Bearer {key}", "Accept": "application/taxii+json;version=2.1"})
    statuses = [http.get(f"{live.url}/taxii2/").status_code for _ in range(BURST + 30)]
    assert statuses[:BURST] == [200] * BURST
    # The rate earns back one request a second while these are sent: on a slow machine a few more get through.
    assert 429 in statuses[BURST:]
