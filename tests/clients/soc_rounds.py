"""What every client module of tests/clients checks, and the tools it checks with.

Each module replays one SOC product's polling, request by request, against the
server listening on a loopback socket (tests/conftest.py `server`), as a licensee
reading the regulator's advisories. The regulator publishes in three rounds:

1. a first batch: the client gets every object exactly once;
2. a second batch: the client gets exactly the new objects;
3. nothing: the client's idle poll gets nothing.

`WireLog` records every exchange on the client's own HTTP session, so a module
can check what went over the wire (auth scheme, page size, parameters, statuses),
not only what the product would keep after its own de-duplication.
"""

from __future__ import annotations

import base64
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlsplit

import requests
from conftest import ADVISORIES, TAXII, TaxiiSession, envelope

FIRST_ROUND, SECOND_ROUND = 160, 50
PER_POST = 40  # envelopes under the test config's max_content_length
ADVISORIES_TITLE = "Regulator advisories"


def stix_now() -> str:
    """A STIX timestamp of the present moment, to the millisecond, as producers write `modified`."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def advisory_indicator() -> dict:
    stamp = stix_now()
    n = uuid.uuid4()
    return {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{n}", "created": stamp, "modified": stamp,
            "name": f"Scanner {n.hex[:8]}", "pattern": f"[ipv4-addr:value = '198.51.100.{n.int % 250 + 1}']",
            "pattern_type": "stix", "valid_from": stamp}


class Publisher:
    """The regulator, publishing advisories over HTTP."""

    def __init__(self, session: TaxiiSession):
        self.session = session

    def publish(self, count: int) -> list[str]:
        objects = [advisory_indicator() for _ in range(count)]
        for start in range(0, count, PER_POST):
            response = self.session.post(f"/collections/{ADVISORIES}/objects/", envelope(*objects[start:start + PER_POST]))
            assert response.status_code == 202 and response.json()["success_count"] == len(objects[start:start + PER_POST])
        return [obj["id"] for obj in objects]


def assert_exactly_once(got: list[str], expected: list[str], what: str) -> None:
    repeated = sorted(object_id for object_id, times in Counter(got).items() if times > 1)
    missing, extra = set(expected) - set(got), set(got) - set(expected)
    assert not repeated, f"{what}: {len(repeated)} objects came more than once"
    assert not missing, f"{what}: {len(missing)} of {len(expected)} objects never came"
    assert not extra, f"{what}: {len(extra)} objects that were not new came again"


def check_three_rounds(publisher: Publisher, poll_round) -> list[list[str]]:
    """`poll_round()` runs the client once, as it runs on its schedule, and returns the ids it took in."""
    first = publisher.publish(FIRST_ROUND)
    assert_exactly_once(poll_round(), first, "first round")
    second = publisher.publish(SECOND_ROUND)
    assert_exactly_once(poll_round(), second, "second round")
    assert_exactly_once(poll_round(), [], "idle poll")
    return [first, second]


# -- what went over the wire -------------------------------------------------------------------------------------

@dataclass
class Exchange:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    status: int
    object_ids: list[str] = field(default_factory=list)
    more: bool | None = None
    next: str | None = None
    date_added_last: str | None = None

    @property
    def auth_scheme(self) -> str | None:
        value = self.headers.get("Authorization")
        return value.split(" ", 1)[0] if value else None


class WireLog:
    """Every request a `requests.Session` sends and what came back."""

    def __init__(self):
        self.exchanges: list[Exchange] = []

    def attach(self, session: requests.Session) -> requests.Session:
        hooks = session.hooks.setdefault("response", [])
        if self._record not in hooks:
            hooks.append(self._record)
        return session

    def _record(self, response: requests.Response, *args, **kwargs) -> None:
        request = response.request
        parts = urlsplit(request.url)
        exchange = Exchange(request.method, parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()},
                            dict(request.headers), response.status_code,
                            date_added_last=response.headers.get("X-TAXII-Date-Added-Last"))
        if parts.path.endswith("/objects/") and response.status_code == 200 and request.method == "GET":
            body = response.json()
            exchange.object_ids = [obj["id"] for obj in body.get("objects", [])]
            exchange.more, exchange.next = body.get("more"), body.get("next")
        self.exchanges.append(exchange)

    def pages(self) -> list[Exchange]:
        """The object pages read from the advisories collection (by id or alias), in order."""
        return [e for e in self.exchanges if e.method == "GET" and e.path.endswith("/objects/")
                and e.path.rstrip("/").split("/")[-2] in (ADVISORIES, "advisories")]

    def objects_received(self, since: int = 0) -> list[str]:
        return [object_id for page in self.pages()[since:] for object_id in page.object_ids]

    def assert_all_succeeded(self) -> None:
        refused = [(e.method, e.path, e.status) for e in self.exchanges if e.status >= 400 and e.status != 404]
        assert not refused, f"refused: {refused[:5]}"

    def assert_every_page(self, auth_scheme: str, **query: str) -> list[Exchange]:
        """No refusal; every page sent with `auth_scheme` and these query parameters. Returns the pages."""
        self.assert_all_succeeded()
        pages = self.pages()
        assert pages and {page.auth_scheme for page in pages} == {auth_scheme}
        for name, value in query.items():
            assert {page.query.get(name) for page in pages} == {value}, name
        return pages


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


ACCEPT_TAXII = TAXII
