"""Microsoft Sentinel's "Threat Intelligence - TAXII" data connector, replayed over HTTP.

Follows MicrosoftDocs/azure-docs `articles/sentinel/connect-threat-intelligence-taxii.md`:
the connector takes an API root URL, a collection ID, a user name and a password
(HTTP Basic is its only scheme), a look-back ("All available", "At most one day
old", ...) and a polling frequency. How it pages is not documented, so both ways
a TAXII 2.1 client may page are replayed:

- `next`: follow `next` alone, as OpenCTI's connector does;
- `added_after`: ask again with `added_after` = the page's X-TAXII-Date-Added-Last
  (§3.5 allows it), with its full precision.

Either way the poll's last X-TAXII-Date-Added-Last is its bookmark for the next
poll. .NET writes timestamps with seven fractional digits; the look-back is sent
that way.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import requests
from soc_rounds import ACCEPT_TAXII, Publisher, WireLog, basic, check_three_rounds

from conftest import ADVISORIES

pytestmark = pytest.mark.every_backend

LOOK_BACK = timedelta(days=1)  # "At most one day old"


def dotnet_round_trip(moment: datetime) -> str:
    """DateTime.ToString("o") in UTC: seven fractional digits."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


class SentinelTaxiiConnector:
    def __init__(self, api_root_url: str, collection_id: str, user: str, password: str, paging: str, wire: WireLog):
        self.objects_url = f"{api_root_url.rstrip('/')}/collections/{collection_id}/objects/"
        self.http = wire.attach(requests.Session())
        self.headers = {"Accept": ACCEPT_TAXII, "Authorization": basic(user, password)}
        self.paging = paging
        self.bookmark = dotnet_round_trip(datetime.now(timezone.utc) - LOOK_BACK)

    def poll(self) -> list[str]:
        """One poll at the configured frequency."""
        params, taken = {"added_after": self.bookmark}, []
        while True:
            response = self.http.get(self.objects_url, params=params, headers=self.headers, timeout=30)
            response.raise_for_status()
            body = response.json()
            taken += [obj["id"] for obj in body.get("objects", [])]
            self.bookmark = response.headers.get("X-TAXII-Date-Added-Last", self.bookmark)
            if not body.get("more"):
                return taken
            params = {"next": body["next"]} if self.paging == "next" else {"added_after": self.bookmark}


@pytest.mark.parametrize("paging", ["next", "added_after"])
def test_sentinel_gets_each_object_once_whichever_way_it_pages(server, regulator, keys, paging):
    wire = WireLog()
    sentinel = SentinelTaxiiConnector(f"{server.url}/api/", ADVISORIES, "northtel", keys["northtel"], paging, wire)
    check_three_rounds(Publisher(regulator), sentinel.poll)
    pages = wire.assert_every_page("Basic")
    assert sum(page.more is True for page in pages) >= 3  # the server's default page size (50) applies
    if paging == "next":
        assert any(set(page.query) == {"next"} for page in pages)
    else:
        assert all(set(page.query) == {"added_after"} for page in pages)
