"""taxii2-client and the stix2 library's TAXII data source and sink, run as the real libraries.

taxii2-client 2.3 (`taxii2client/v21/__init__.py`: `Server`, `ApiRoot`, `Collection`,
`as_pages`) and stix2 3.0 (`stix2/datastore/taxii.py`: `TAXIICollectionSource`,
`TAXIICollectionSink`):

- taxii2-client: discovery, the default API root, the collection by id, then
  `as_pages(get_objects, per_request=30, added_after=...)`; the library hands its
  caller envelopes, not headers, so the bookmark is the newest `date_added` in the
  manifest, read with `as_pages(get_manifest, ...)` in the same way; `TokenAuth`;
- stix2: the sink publishes through `Collection.add_objects`; the source queries
  with a Filter on `added_after` and pages with `as_pages` at `items_per_page=5000`,
  which the server caps (taxii2-client then adopts the capped page size); `get` of
  an unknown id expects a 404 and answers None.

Neither library retries a 429 or a 5xx: one refusal would end the whole sync.
"""

from __future__ import annotations

import uuid

import pytest
import stix2
from soc_rounds import FIRST_ROUND, SECOND_ROUND, Publisher, WireLog, assert_exactly_once, check_three_rounds
from taxii2client import v21
from taxii2client.common import TokenAuth

from conftest import ADVISORIES

pytestmark = pytest.mark.every_backend

PER_REQUEST = 30


class Taxii2ClientPoller:
    def __init__(self, discovery_url: str, user: str, password: str, wire: WireLog):
        server = v21.Server(discovery_url, user=user, password=password)
        self.collection = next(c for c in server.default.collections if c.id == ADVISORIES)
        wire.attach(self.collection._conn.session)
        self.bookmark: str | None = None

    def poll(self) -> list[str]:
        filters = {"added_after": self.bookmark} if self.bookmark else {}
        taken = [obj["id"] for envelope in v21.as_pages(self.collection.get_objects, per_request=PER_REQUEST, **filters)
                 for obj in envelope.get("objects", [])]
        self.bookmark = newest_date_added(self.collection, self.bookmark)
        return taken


def test_taxii2_client_as_pages_gets_each_object_once(server, regulator, keys):
    wire = WireLog()
    poller = Taxii2ClientPoller(f"{server.url}/taxii2/", "northtel", keys["northtel"], wire)
    check_three_rounds(Publisher(regulator), poller.poll)
    wire.assert_every_page("Basic", limit=str(PER_REQUEST))


def test_stix2_sink_publishes_and_the_source_reads_each_object_once(server, keys):
    collection_url = f"{server.url}/api/collections/{ADVISORIES}/"
    wire = WireLog()
    publisher = v21.Collection(collection_url, auth=TokenAuth(keys["regulator"]))
    reader = v21.Collection(collection_url, auth=TokenAuth(keys["northtel"]))
    wire.attach(reader._conn.session)
    sink, source = stix2.TAXIICollectionSink(publisher), stix2.TAXIICollectionSource(reader)

    def publish(count: int) -> list[str]:
        indicators = [stix2.Indicator(name=f"Scanner {n}", pattern=f"[ipv4-addr:value = '203.0.113.{n % 250 + 1}']",
                                      pattern_type="stix") for n in range(count)]
        for start in range(0, count, 40):
            sink.add(indicators[start:start + 40])
        return [indicator.id for indicator in indicators]

    bookmark, seen_pages = None, 0

    def read_new() -> list[str]:
        nonlocal bookmark, seen_pages
        filters = [stix2.Filter("type", "=", "indicator")]
        if bookmark:
            filters.append(stix2.Filter("added_after", "=", bookmark))
        found = source.query(filters)
        received = wire.objects_received(since=seen_pages)  # on the wire, before stix2 drops duplicates
        seen_pages = len(wire.pages())
        bookmark = newest_date_added(reader, bookmark)
        assert sorted(received) == sorted(obj.id for obj in found)
        return received

    first = publish(FIRST_ROUND)
    assert_exactly_once(read_new(), first, "first round")
    second = publish(SECOND_ROUND)
    assert_exactly_once(read_new(), second, "second round")
    assert_exactly_once(read_new(), [], "idle poll")
    assert source.get(f"indicator--{uuid.uuid4()}") is None  # a 404, as the source expects
    wire.assert_all_succeeded()
    # The source asks for items_per_page=5000; the server caps pages at its max_limit (200 in the test config).
    assert wire.pages()[0].query["limit"] == "5000" and max(len(page.object_ids) for page in wire.pages()) <= 200


def newest_date_added(collection: v21.Collection, after: str | None) -> str | None:
    """The bookmark a taxii2-client user can read: the newest `date_added` in the manifest."""
    newest = after
    filters = {"added_after": after} if after else {}
    for envelope in v21.as_pages(collection.get_manifest, per_request=PER_REQUEST, **filters):
        if envelope.get("objects"):
            newest = envelope["objects"][-1]["date_added"]
    return newest
