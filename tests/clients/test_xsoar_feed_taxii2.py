"""Cortex XSOAR's TAXII 2 Feed, replayed with the real taxii2-client.

Follows demisto/content `Packs/ApiModules/Scripts/TAXII2ApiModule/TAXII2ApiModule.py`
(`Taxii2FeedClient`: `init_server`, `set_api_root`, `init_collection_to_fetch`,
`build_iterator`, `poll_collection`, `parse_generator_type_envelope`) and
`Packs/FeedTAXII/Integrations/FeedTAXII2/FeedTAXII2.py` (`fetch_indicators_command`,
`get_added_after`, `filter_previously_fetched_indicators`):

- the discovery URL (ending in `taxii2`); user name `_api_token_key` and the key as
  password select taxii2-client's `TokenAuth` (`Authorization: Token <key>`); one
  `_HTTPConnection` given to the server and, replacing its own, to the default API root;
- the collection found by title; `as_pages(get_objects, per_request=limit_per_request)`
  (100 by default) with `added_after`; reading stops at an envelope without objects;
- `added_after` is the last run's newest `modified` among the objects it parsed, or
  `now - initial_interval` (`%Y-%m-%dT%H:%M:%S.%fZ`); since `modified` is older than
  `date_added`, each fetch reads the tail again and the feed drops what the
  previous fetch already held with the same `modified`.

What the product ingests is checked against the rounds; what went over the wire
is checked to be whole pages, never a refusal (a 429 would end the whole fetch).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from soc_rounds import ADVISORIES_TITLE, Publisher, WireLog, check_three_rounds
from taxii2client import v21
from taxii2client.common import TokenAuth, _HTTPConnection

pytestmark = pytest.mark.every_backend

LIMIT_PER_REQUEST = 100
INITIAL_INTERVAL = timedelta(days=1)
TAXII_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


class XsoarTaxii2Feed:
    def __init__(self, discovery_url: str, username: str, password: str, collection_title: str, wire: WireLog):
        auth = TokenAuth(key=password) if username == "_api_token_key" else None
        self.conn = _HTTPConnection(verify=True, proxies=None, version="2.1", auth=auth)
        wire.attach(self.conn.session)
        self.server = v21.Server(discovery_url, verify=True, proxies=None, conn=self.conn)
        self.api_root = self.server.default
        self.api_root._conn = self.conn
        self.collection = next(c for c in self.api_root.collections if c.title == collection_title)
        self.last_run: dict = {}

    def fetch_indicators(self) -> list[str]:
        """One `fetch-indicators` run: the ids it creates indicators for."""
        added_after = self.last_run.get(self.collection.id) or (
            datetime.now(timezone.utc) - INITIAL_INTERVAL).strftime(TAXII_TIME_FORMAT)
        parsed, newest_modified = [], None
        for envelope in v21.as_pages(self.collection.get_objects, per_request=LIMIT_PER_REQUEST,
                                     added_after=added_after):
            objects = envelope.get("objects")
            if not objects:
                break
            for obj in objects:
                parsed.append(obj)
                if newest_modified is None or _stix_time(obj["modified"]) > _stix_time(newest_modified):
                    newest_modified = obj["modified"]
        self.last_run[self.collection.id] = newest_modified or added_after
        return [obj["id"] for obj in self._not_fetched_before(parsed)]

    def _not_fetched_before(self, parsed: list[dict]) -> list[dict]:
        """`filter_previously_fetched_indicators`: drop what the last fetch held with the same `modified`."""
        previous = self.last_run.get("latest_indicators")
        self.last_run["latest_indicators"] = {obj["id"]: obj["modified"] for obj in parsed}
        if previous is None:
            return parsed
        return [obj for obj in parsed if obj["id"] not in previous or obj["modified"] > previous[obj["id"]]]


def _stix_time(text: str) -> datetime:
    return datetime.strptime(text, TAXII_TIME_FORMAT)


def test_xsoar_feed_ingests_each_indicator_once_and_is_never_refused(server, regulator, keys):
    wire = WireLog()
    feed = XsoarTaxii2Feed(f"{server.url}/taxii2/", "_api_token_key", keys["northtel"], ADVISORIES_TITLE, wire)
    check_three_rounds(Publisher(regulator), feed.fetch_indicators)
    pages = wire.assert_every_page("Token", limit=str(LIMIT_PER_REQUEST))
    assert all(len(page.object_ids) == LIMIT_PER_REQUEST for page in pages if page.more)
