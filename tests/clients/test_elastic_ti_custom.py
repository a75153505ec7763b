"""Elastic's Custom Threat Intelligence integration (`ti_custom`, CEL input), replayed over HTTP.

Follows elastic/integrations
`packages/ti_custom/data_stream/indicator/agent/stream/cel.yml.hbs` (the TAXII 2.1
program, `enable_taxii`):

- `url` is the collection's objects URL; with `initial_interval` set the first
  request is `url.trim_right("/") + "/?" + added_after & limit`, `added_after`
  being the cursor's `last_timestamp`, or `now - initial_interval` in RFC 3339
  (whole seconds) before there is one;
- headers: `Accept` (accept_header), `Content-Type` (content_header) even on GET,
  `Authorization: <key_type, default Bearer> <api_key>` or Basic;
- the next page is `url.trim_right("/") + "/?next=<next>&limit=<limit>"`: `next`
  and `limit` only; the program runs again at once while `want_more`;
- every 200 replaces the cursor with `{last_timestamp: X-Taxii-Date-Added-Last}`;
- events come from `body.objects.map(...)`: an envelope without `objects`, which
  is what TAXII sends for an empty page (lists are never empty, §2), is an
  evaluation error; the input then keeps its state and publishes nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

import pytest
import requests
from soc_rounds import ACCEPT_TAXII, Publisher, WireLog, check_three_rounds


pytestmark = pytest.mark.every_backend

LIMIT = 40
INITIAL_INTERVAL = timedelta(hours=24)


class CelEvaluationError(Exception):
    """What the CEL input logs when the program cannot be evaluated."""


class ElasticTiCustom:
    def __init__(self, url: str, api_key: str, wire: WireLog):
        self.state = {"url": url, "api_key": api_key, "key_type": "Bearer", "limit": LIMIT, "want_more": False,
                      "accept_header": ACCEPT_TAXII, "content_header": ACCEPT_TAXII, "cursor": {}}
        self.http = wire.attach(requests.Session())
        self.evaluation_errors = 0

    def _first_url(self) -> str:
        last = self.state["cursor"].get("last_timestamp")
        added_after = last or (datetime.now(timezone.utc) - INITIAL_INTERVAL).strftime("%Y-%m-%dT%H:%M:%SZ")
        return self.state["url"].rstrip("/") + "/?" + urlencode({"added_after": added_after,
                                                                  "limit": str(self.state["limit"])})

    def evaluate(self) -> list[str]:
        """One evaluation of the program: one request; the events it publishes."""
        url = self.state["next_url"] if self.state["want_more"] else self._first_url()
        response = self.http.get(url, headers={"Accept": self.state["accept_header"],
                                               "Content-Type": self.state["content_header"],
                                               "Authorization": f"{self.state['key_type']} {self.state['api_key']}"},
                                 timeout=30)
        if response.status_code not in (200, 206):
            self.state["want_more"] = False
            return []
        body = response.json()
        if "objects" not in body:
            raise CelEvaluationError("no such key: objects")
        events = [obj["id"] for obj in body["objects"]]
        has_next = bool(body.get("next"))
        self.state.update(
            want_more=has_next,
            next_url=(self.state["url"].rstrip("/") + "/?" + urlencode({"next": body["next"],
                                                                        "limit": str(self.state["limit"])})
                      if has_next else self.state["url"]),
            cursor={"last_timestamp": response.headers["X-Taxii-Date-Added-Last"]}
            if "X-Taxii-Date-Added-Last" in response.headers else {})
        return events

    def interval(self) -> list[str]:
        """One interval: the program runs again at once while it wants more."""
        events = []
        while True:
            try:
                events += self.evaluate()
            except CelEvaluationError:
                self.evaluation_errors += 1
                return events
            if not self.state["want_more"]:
                return events


def test_elastic_ti_custom_pages_with_next_and_limit_alone_and_keeps_its_cursor(server, regulator, keys):
    wire = WireLog()
    agent = ElasticTiCustom(f"{server.url}/api/collections/advisories/objects/", keys["northtel"], wire)
    check_three_rounds(Publisher(regulator), agent.interval)
    pages = wire.assert_every_page("Bearer", limit=str(LIMIT))
    continued = [page for page in pages if "next" in page.query]
    assert continued and all(set(page.query) == {"next", "limit"} for page in continued)
    assert all(page.headers["Content-Type"] == ACCEPT_TAXII for page in pages)
    # The idle poll: an empty page has no `objects` (never an empty list), which the program
    # cannot map; the input logs that and keeps its cursor, so the next interval asks again
    # from the same place.
    assert agent.evaluation_errors == 1
    assert pages[-1].object_ids == [] and pages[-1].query["added_after"] == pages[-2].date_added_last
    assert agent.state["cursor"]["last_timestamp"] == pages[-2].date_added_last
    assert agent.interval() == [] and agent.evaluation_errors == 2
