"""OpenCTI's built-in TAXII ingestion (Data > Ingestion > TAXII feeds), replayed over HTTP.

Follows OpenCTI-Platform/opencti
`opencti-platform/opencti-graphql/src/manager/ingestionManager.ts`
(`prepareTaxiiGetParam`, `buildTaxiiHttpClientOptions`, `taxiiHttpGet`,
`processTaxiiResponse`):

- one GET per execution of `${uri}/collections/${collection}/objects/`, `uri` being
  the API root URL (a trailing slash added when missing), `Accept:
  application/taxii+json;version=2.1`, `Authorization: Basic base64("user:password")`
  or `Bearer <token>`;
- parameters `next` = the stored cursor and `added_after` = the stored
  `added_after_start`, both sent whenever set, so a continued poll repeats the
  poll's `added_after`; no `limit` unless the platform's
  `taxii_feed:limit_per_request` is set (0 by default);
- a page with objects and `more` and `next`: the cursor becomes `next`, the
  bookmark stays; otherwise the cursor is cleared and the bookmark becomes
  `utcDate(X-TAXII-Date-Added-Last).toISOString()`: moment() cuts it to the
  millisecond; a page without objects clears the cursor and keeps the bookmark.
"""

from __future__ import annotations

import pytest
import requests
from soc_rounds import ACCEPT_TAXII, Publisher, WireLog, basic, check_three_rounds

from conftest import ADVISORIES
from taxii_server.timestamps import format_timestamp, now_micros

pytestmark = pytest.mark.every_backend


def iso_milliseconds(header: str) -> str:
    """moment(header).toISOString(): UTC, three fractional digits (moment keeps milliseconds)."""
    return header[:23] + "Z"


class OpenCTITaxiiIngestion:
    def __init__(self, uri: str, collection: str, authorization: str, wire: WireLog):
        self.uri, self.collection = uri if uri.endswith("/") else uri + "/", collection
        self.http = wire.attach(requests.Session())
        self.headers = {"Accept": ACCEPT_TAXII, "Authorization": authorization}
        self.current_state_cursor: str | None = None
        # The feed's "import from date", a day back, as the form stores it.
        self.added_after_start: str | None = iso_milliseconds(format_timestamp(now_micros() - 86_400_000_000))

    def execute(self) -> list[str]:
        """One execution of the ingestion manager for this feed: one GET."""
        params = {name: value for name, value in (("next", self.current_state_cursor),
                                                  ("added_after", self.added_after_start)) if value}
        response = self.http.get(f"{self.uri}collections/{self.collection}/objects/", params=params,
                                 headers=self.headers, timeout=30)
        response.raise_for_status()
        data, added_last = response.json(), response.headers.get("X-TAXII-Date-Added-Last")
        objects = data.get("objects") or []
        if not objects:
            self.current_state_cursor = None
        elif data.get("more") and data.get("next"):
            self.current_state_cursor = data["next"]
        else:
            self.current_state_cursor = None
            self.added_after_start = iso_milliseconds(added_last)
        return [obj["id"] for obj in objects]

    def executions_until_caught_up(self) -> list[str]:
        """Executions run every scheduling period; a round lasts until the cursor is cleared."""
        taken = self.execute()
        while self.current_state_cursor:
            taken += self.execute()
        return taken


@pytest.mark.parametrize("auth", ["basic", "bearer"])
def test_opencti_ingestion_with_a_millisecond_bookmark_gets_each_object_once(server, regulator, keys, auth):
    wire = WireLog()
    key = keys["northtel"]
    authorization = basic("northtel", key) if auth == "basic" else f"Bearer {key}"
    feed = OpenCTITaxiiIngestion(f"{server.url}/api", ADVISORIES, authorization, wire)
    check_three_rounds(Publisher(regulator), feed.executions_until_caught_up)
    pages = wire.assert_every_page("Basic" if auth == "basic" else "Bearer", limit=None)
    # Its bookmark is a header cut to the millisecond, and continued pages repeat it beside `next`.
    bookmarks = {page.query.get("added_after") for page in pages} - {None}
    assert bookmarks and all(len(b) == len("2026-01-01T00:00:00.000Z") for b in bookmarks)
    assert any("next" in page.query and "added_after" in page.query for page in pages)


def test_opencti_ingestion_settles_on_a_bookmark_inside_a_large_write(server, regulator, keys):
    """The issue as filed: one POST of many objects sat in one or two milliseconds, and the
    cut bookmark read the same tail again on every execution."""
    wire = WireLog()
    feed = OpenCTITaxiiIngestion(f"{server.url}/api/", "advisories", f"Bearer {keys['northtel']}", wire)
    publisher = Publisher(regulator)
    published = publisher.publish(120)
    assert sorted(feed.executions_until_caught_up()) == sorted(published)
    assert [feed.execute() for _ in range(3)] == [[], [], []]
