"""OpenCTI's TAXII 2 import connector, replayed with the real taxii2-client.

Follows OpenCTI-Platform/connectors
`external-import/taxii2/src/connector/client_taxii.py` (`Taxii2.poll`) and
`external-import/taxii2/src/connector/connector.py` (`process_message`):

- a taxii2client.v21.Server on the discovery URL with requests' HTTPBasicAuth;
  the API root chosen by the last segment of its URL, the collection by title;
- one `filters` dict kept on the instance for the connector's whole life: `limit`
  (url_query_limit) and `added_after`;
- first page with `added_after`; while `more`, it pops `added_after` and follows
  `next` alone; the last `next` it followed stays in `filters`;
- before each run it sets `added_after` to its last run's start, kept as whole
  seconds (`int(now.timestamp())`) and sent as `%Y-%m-%dT%H:%M:%S.%fZ`; the first
  run looks back `initial_history` hours with a naive `datetime.now()`.

So from its second run on it sends the stale `next` together with the new
`added_after`. Objects published in the second a run starts in are read again by
the next run, by the connector's own design; the rounds here start a run in a
later second than the last publication, as an hourly connector does.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
from requests.auth import HTTPBasicAuth
from soc_rounds import ADVISORIES_TITLE, Publisher, WireLog, check_three_rounds
from taxii2client import v21

pytestmark = pytest.mark.every_backend

URL_QUERY_LIMIT = 50
INITIAL_HISTORY_HOURS = 24


class OpenCTIConnector:
    def __init__(self, discovery_url: str, username: str, password: str, wire: WireLog):
        self.server = v21.Server(discovery_url, auth=HTTPBasicAuth(username, password))
        self.wire = wire
        self.filters: dict = {"limit": URL_QUERY_LIMIT}
        self.last_run: int | None = None

    def collection(self, root_path: str, title: str):
        root = next(root for root in self.server.api_roots if root.url.split("/")[-2] == root_path)
        collection = next(collection for collection in root.collections if collection.title == title)
        self.wire.attach(collection._conn.session)  # each API root has its own connection
        return collection

    def run(self, root_path: str, title: str) -> list[str]:
        """`process_message`: one scheduled run; the ids it sends on to the platform."""
        started = datetime.now(timezone.utc)
        if self.last_run is not None:
            self.filters["added_after"] = datetime.fromtimestamp(self.last_run, tz=timezone.utc).strftime(
                "%Y-%m-%dT%H:%M:%S.%fZ")
        else:
            self.filters["added_after"] = datetime.now() - timedelta(hours=INITIAL_HISTORY_HOURS)
        objects = self.poll(self.collection(root_path, title))
        self.last_run = int(started.timestamp())
        return [obj["id"] for obj in objects]

    def poll(self, collection) -> list[dict]:
        """`Taxii2.poll` on a TAXII 2.1 collection."""
        objects: list[dict] = []
        response = collection.get_objects(**self.filters)
        if not response.get("objects"):
            return objects
        while True:
            objects.extend(response.get("objects", []))
            if response.get("more") is not True:
                return objects
            if "next" in response:
                self.filters.pop("added_after", None)
                self.filters["next"] = response["next"]
                response = collection.get_objects(**self.filters)


def start_in_a_later_second() -> None:
    """Wait for the next whole second: a connector scheduled hourly never starts in the
    second of the publication before it."""
    time.sleep(1.0 - time.time() % 1.0 + 0.01)


def test_the_opencti_connector_gets_each_object_once_across_runs(server, regulator, keys):
    wire = WireLog()
    connector = OpenCTIConnector(f"{server.url}/taxii2/", "northtel", keys["northtel"], wire)

    def one_run() -> list[str]:
        start_in_a_later_second()
        return connector.run("api", ADVISORIES_TITLE)

    check_three_rounds(Publisher(regulator), one_run)
    pages = wire.assert_every_page("Basic", limit=str(URL_QUERY_LIMIT))
    continued = [page for page in pages if "next" in page.query]
    assert continued and all("added_after" not in page.query for page in continued[:3])
    # From its second run on, the stale `next` of the run before travels with the new added_after.
    assert any("next" in page.query and "added_after" in page.query for page in pages)
