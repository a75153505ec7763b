"""Filtering and pagination (TAXII 2.1 §3.4, §3.4.1, §3.5) over real HTTP.

Where the specification leaves a choice, the tests hold the server to the
decisions in the project's conformance checklist: `added_after` is strictly
after, `next` is a signed token bound to the query and the caller, malformed
filters are 400, and empty pages repeat `added_after` in the date headers.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest

from conftest import COMMUNITY, TaxiiSession, envelope, indicator

# The HTTP contract: every case runs once per storage backend.
pytestmark = pytest.mark.every_backend

FIRST, LAST = "X-TAXII-Date-Added-First", "X-TAXII-Date-Added-Last"
V1, V2, V3 = "2026-01-01T00:00:00.000Z", "2026-02-01T00:00:00.000Z", "2026-03-01T00:00:00.000Z"
OBJECTS = f"/collections/{COMMUNITY}/objects/"
MANIFEST = f"/collections/{COMMUNITY}/manifest/"


# -- helpers -------------------------------------------------------------------

def object_path(object_id: str) -> str:
    return f"{OBJECTS}{object_id}/"


def versions_path(object_id: str) -> str:
    return f"{OBJECTS}{object_id}/versions/"


def malware(n: int, modified: str = V1) -> dict:
    return {"type": "malware", "spec_version": "2.1", "id": f"malware--{uuid.UUID(int=n, version=4)}",
            "created": V1, "modified": modified, "name": f"test malware {n}", "is_family": False}


def identity(n: int) -> dict:
    return {"type": "identity", "spec_version": "2.1", "id": f"identity--{uuid.UUID(int=n, version=4)}",
            "created": V1, "modified": V1, "name": f"test identity {n}", "identity_class": "organization"}


def publish(session: TaxiiSession, objects: list[dict]) -> None:
    """POST in envelopes small enough for max_content_length, asserting all were stored."""
    for start in range(0, len(objects), 100):
        response = session.post(OBJECTS, envelope(*objects[start:start + 100]))
        assert response.status_code == 202, response.text
        assert response.json()["failure_count"] == 0, response.text


def get_ok(session: TaxiiSession, path: str, **params):
    response = session.get(path, params=params)
    assert response.status_code == 200, response.text
    return response


def listed(session: TaxiiSession, path: str = OBJECTS, **params) -> list[tuple[str, str]]:
    """(id, version) of each record of one page, for objects, manifest or object endpoints."""
    body = get_ok(session, path, **params).json()
    return [(item["id"], item.get("version") or item["modified"]) for item in body.get("objects", [])]


def ids(session: TaxiiSession, path: str = OBJECTS, **params) -> list[str]:
    return [object_id for object_id, _ in listed(session, path, **params)]


def manifest_dates(session: TaxiiSession) -> list[str]:
    """date_added of every version in the collection, in order."""
    records = get_ok(session, MANIFEST, **{"match[version]": "all", "limit": "200"}).json().get("objects", [])
    return [record["date_added"] for record in records]


def all_pages(session: TaxiiSession, path: str, key: str = "objects", **params) -> list[dict]:
    """Follow `next` to the end; each page is checked for the more/next rules."""
    pages, token = [], None
    while True:
        query = dict(params, **({"next": token} if token else {}))
        body = get_ok(session, path, **query).json()
        pages.append(body)
        if not body["more"]:
            assert "next" not in body
            return pages
        assert body["next"], "more is true, so next must be present"
        assert body.get(key), "a page announcing more has records"
        token = body["next"]
        assert len(pages) < 100, "paging does not end"


def assert_bad_request(response) -> None:
    assert response.status_code == 400, response.text
    assert response.json()["http_status"] == "400"


# -- added_after (§3.4) ---------------------------------------------------------

def test_added_after_returns_only_objects_added_strictly_after_it(northtel):
    """An object whose date_added equals added_after is not "added after" it."""
    publish(northtel, [indicator(n) for n in range(5)])
    dates = manifest_dates(northtel)
    assert ids(northtel, added_after=dates[2]) == [indicator(3)["id"], indicator(4)["id"]]
    assert ids(northtel, added_after=dates[4]) == []


def test_added_after_one_microsecond_earlier_includes_the_object(northtel):
    publish(northtel, [indicator(n) for n in range(3)])
    date = manifest_dates(northtel)[1]
    earlier = datetime.strptime(date, "%Y-%m-%dT%H:%M:%S.%fZ") - timedelta(microseconds=1)
    added_after = earlier.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert ids(northtel, added_after=added_after) == [indicator(1)["id"], indicator(2)["id"]]


def test_added_after_accepts_any_rfc_3339_precision(northtel):
    """Input timestamps may have any precision (checklist D1)."""
    publish(northtel, [indicator(1)])
    for text in ("2020-01-01T00:00:00Z", "2020-01-01T00:00:00.0Z", "2020-01-01T00:00:00.123456789Z"):
        assert ids(northtel, added_after=text) == [indicator(1)["id"]]
    assert ids(northtel, added_after="2099-01-01T00:00:00.000Z") == []


def test_without_added_after_the_oldest_objects_come_first(northtel):
    """§3.4: with no added_after the server returns the oldest matching objects first."""
    publish(northtel, [indicator(n) for n in range(10)])
    assert ids(northtel, limit="3") == [indicator(n)["id"] for n in range(3)]
    assert ids(northtel, MANIFEST, limit="3") == [indicator(n)["id"] for n in range(3)]


@pytest.mark.parametrize("value", ["yesterday", "2026-01-01", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z",
                                   "2026-01-01T00:00:00", "", "2026-01-01 00:00:00Z"])
def test_a_malformed_added_after_is_a_bad_request(northtel, value):
    assert_bad_request(northtel.get(OBJECTS, params={"added_after": value}))


def test_added_after_filters_the_manifest_versions_and_object_endpoints(northtel):
    object_id = indicator(1)["id"]
    publish(northtel, [indicator(1, modified=V1)])
    publish(northtel, [indicator(1, modified=V2), indicator(2)])
    publish(northtel, [indicator(1, modified=V3)])
    dates = manifest_dates(northtel)  # V1, V2, indicator 2, V3
    after_v1 = {"added_after": dates[0]}
    assert listed(northtel, MANIFEST, **after_v1, **{"match[version]": "all"}) == \
        [(object_id, V2), (indicator(2)["id"], V1), (object_id, V3)]
    assert get_ok(northtel, versions_path(object_id), **after_v1).json()["versions"] == [V2, V3]
    assert listed(northtel, object_path(object_id), **after_v1, **{"match[version]": "all"}) == \
        [(object_id, V2), (object_id, V3)]
    assert get_ok(northtel, versions_path(object_id), added_after=dates[3]).json() == {"more": False}


# -- limit (§3.4) ---------------------------------------------------------------

def test_limit_one_returns_one_object_and_announces_more(northtel):
    publish(northtel, [indicator(1), indicator(2)])
    body = get_ok(northtel, OBJECTS, limit="1").json()
    assert [o["id"] for o in body["objects"]] == [indicator(1)["id"]]
    assert body["more"] is True and body["next"]


def test_without_limit_the_default_page_size_applies(northtel):
    publish(northtel, [indicator(n) for n in range(60)])
    body = get_ok(northtel, OBJECTS).json()
    assert len(body["objects"]) == 50  # paging.default_limit
    assert body["more"] is True


@pytest.mark.parametrize("limit", ["1000", "201", "99999999999999999999999999"])
def test_a_limit_above_the_servers_maximum_is_clamped(northtel, limit):
    """§3.4: the server MAY return fewer than asked, and announces the rest with more."""
    publish(northtel, [indicator(n) for n in range(205)])
    body = get_ok(northtel, OBJECTS, limit=limit).json()
    assert len(body["objects"]) == 200  # paging.max_limit
    assert body["more"] is True and body["next"]
    rest = get_ok(northtel, OBJECTS, limit=limit, next=body["next"]).json()
    assert len(rest["objects"]) == 5 and rest["more"] is False


@pytest.mark.parametrize("limit", ["0", "-1", "abc", "", "1.5", "1e3", "+5", " 5", "0x10", "²", "٣"])
def test_a_limit_that_is_not_a_positive_integer_is_a_bad_request(northtel, limit):
    """§3.4: limit MUST be a positive integer; anything else is 400, never 500."""
    publish(northtel, [indicator(1)])
    for path in (OBJECTS, MANIFEST, object_path(indicator(1)["id"]), versions_path(indicator(1)["id"])):
        assert_bad_request(northtel.get(path, params={"limit": limit}))


# -- more and next (§3.4, §3.5) -------------------------------------------------

@pytest.mark.parametrize("path", [OBJECTS, MANIFEST], ids=["objects", "manifest"])
def test_paging_with_next_visits_every_object_once_without_gap_or_overlap(northtel, path):
    """120 objects in pages of 25: 5 pages, every object exactly once, in order."""
    sent = [indicator(n) for n in range(120)]
    publish(northtel, sent)
    pages = all_pages(northtel, path, limit="25")
    assert [len(page["objects"]) for page in pages] == [25, 25, 25, 25, 20]
    assert [page["more"] for page in pages] == [True, True, True, True, False]
    assert [item["id"] for page in pages for item in page["objects"]] == [o["id"] for o in sent]


def test_paging_the_versions_of_one_object(northtel):
    # Versions in the past: one more than a few minutes ahead of the server's clock is refused.
    days = [f"2026-01-{d:02d}T00:00:00.000Z" for d in range(1, 13)]
    publish(northtel, [indicator(1, modified=day) for day in days])
    pages = all_pages(northtel, versions_path(indicator(1)["id"]), "versions", limit="5")
    assert [len(page["versions"]) for page in pages] == [5, 5, 2]
    assert [v for page in pages for v in page["versions"]] == days


def test_paging_keeps_other_filters_across_pages(northtel):
    publish(northtel, [indicator(n) if n % 3 else malware(n) for n in range(60)])
    start = manifest_dates(northtel)[9]
    pages = all_pages(northtel, OBJECTS, limit="7", added_after=start, **{"match[type]": "indicator"})
    got = [o["id"] for page in pages for o in page["objects"]]
    assert got == [indicator(n)["id"] for n in range(10, 60) if n % 3]


def test_the_page_size_may_change_between_pages(northtel):
    publish(northtel, [indicator(n) for n in range(10)])
    first = get_ok(northtel, OBJECTS, limit="3").json()
    second = get_ok(northtel, OBJECTS, limit="5", next=first["next"]).json()
    assert [o["id"] for o in second["objects"]] == [indicator(n)["id"] for n in range(3, 8)]


@pytest.mark.parametrize("count, more", [(24, False), (25, False), (26, True)])
def test_more_is_true_only_when_more_objects_exist(northtel, count, more):
    publish(northtel, [indicator(n) for n in range(count)])
    body = get_ok(northtel, OBJECTS, limit="25").json()
    assert body["more"] is more
    assert ("next" in body) is more


def test_paging_headers_describe_each_page(northtel):
    """The date headers of each page are its own first and last date_added (§3.2)."""
    publish(northtel, [indicator(n) for n in range(30)])
    dates = manifest_dates(northtel)
    token, seen = None, 0
    while True:
        response = get_ok(northtel, OBJECTS, limit="8", **({"next": token} if token else {}))
        count = len(response.json()["objects"])
        assert (response.headers[FIRST], response.headers[LAST]) == (dates[seen], dates[seen + count - 1])
        seen += count
        token = response.json().get("next")
        if not token:
            break
    assert seen == 30


@pytest.mark.parametrize("changed", [
    pytest.param({"match[type]": "malware"}, id="other-type"),
    pytest.param({"match[type]": "indicator", "match[version]": "all"}, id="version-added"),
    pytest.param({"match[type]": "indicator", "match[id]": indicator(1)["id"]}, id="id-added"),
    pytest.param({"match[type]": "indicator", "match[spec_version]": "2.1"}, id="spec-version-added"),
])
def test_next_replayed_with_different_filters_is_a_bad_request(northtel, changed):
    """Appendix B: `next` is not trusted; it only continues the query that produced it."""
    publish(northtel, [indicator(n) for n in range(5)])
    token = get_ok(northtel, OBJECTS, limit="2", **{"match[type]": "indicator"}).json()["next"]
    assert_bad_request(northtel.get(OBJECTS, params={"limit": "2", "next": token, **changed}))


@pytest.mark.parametrize("repeated", [
    pytest.param({}, id="next-alone"),
    pytest.param({"limit": "4"}, id="other-limit"),
    pytest.param({"match[type]": "indicator"}, id="type-repeated"),
    pytest.param({"match[type]": "indicator", "added_after": "2020-01-01T00:00:00.000Z"}, id="all-repeated"),
    pytest.param({"added_after": "2019-01-01T00:00:00Z"}, id="earlier-added-after"),
])
def test_next_continues_its_query_with_the_filters_left_out_or_repeated(northtel, repeated):
    """Architecture rule 2: the token carries its query; filters the request leaves out
    come from it (OpenCTI's connector drops added_after, Elastic sends limit and next alone)."""
    publish(northtel, [indicator(n) if n % 2 else malware(n) for n in range(12)])
    first = get_ok(northtel, OBJECTS, limit="2", added_after="2020-01-01T00:00:00.000Z",
                   **{"match[type]": "indicator"}).json()
    rest = all_pages(northtel, OBJECTS, **{"limit": "2", **repeated, "next": first["next"]})
    got = [o["id"] for page in [first, *rest] for o in page["objects"]]
    assert got == [indicator(n)["id"] for n in range(12) if n % 2]


def test_an_added_after_sent_with_next_is_one_more_lower_bound(northtel):
    """OpenCTI's connector keeps the last `next` of a run and sends it on its next run with a
    new added_after: the page starts after the later of the two, with the token's match filters."""
    publish(northtel, [indicator(n) if n % 2 else malware(n) for n in range(12)])
    token = get_ok(northtel, OBJECTS, limit="2", **{"match[type]": "indicator"}).json()["next"]
    later = manifest_dates(northtel)[8]
    body = get_ok(northtel, OBJECTS, limit="20", next=token, added_after=later).json()
    assert [o["id"] for o in body["objects"]] == [indicator(n)["id"] for n in (9, 11)]


def test_next_from_one_endpoint_is_refused_on_another(northtel):
    publish(northtel, [indicator(n) for n in range(5)])
    token = get_ok(northtel, OBJECTS, limit="2").json()["next"]
    assert_bad_request(northtel.get(MANIFEST, params={"limit": "2", "next": token}))


def test_next_used_by_another_operator_is_a_bad_request(northtel, southwave):
    """Both may read the collection, but a cursor is bound to the caller that received it."""
    publish(northtel, [indicator(n) for n in range(5)])
    token = get_ok(northtel, OBJECTS, limit="2").json()["next"]
    assert_bad_request(southwave.get(OBJECTS, params={"limit": "2", "next": token}))
    assert get_ok(northtel, OBJECTS, limit="2", next=token).json()["more"] is True


def _flip(text: str, index: int) -> str:
    return text[:index] + ("A" if text[index] != "A" else "B") + text[index + 1:]


@pytest.mark.parametrize("tamper", [
    pytest.param(lambda t: _flip(t, 2), id="payload-changed"),
    pytest.param(lambda t: _flip(t, len(t) - 2), id="signature-changed"),
    pytest.param(lambda t: t.split(".")[0], id="signature-removed"),
    pytest.param(lambda t: t[:-4], id="truncated"),
    pytest.param(lambda t: t + "x", id="extended"),
    pytest.param(lambda t: "", id="empty"),
    pytest.param(lambda t: "garbage", id="garbage"),
    pytest.param(lambda t: "." + t.split(".")[1], id="payload-removed"),
    pytest.param(lambda t: "%%%.%%%", id="not-base64"),
])
def test_a_tampered_next_is_a_bad_request(northtel, tamper):
    publish(northtel, [indicator(n) for n in range(5)])
    token = get_ok(northtel, OBJECTS, limit="2").json()["next"]
    assert_bad_request(northtel.get(OBJECTS, params={"limit": "2", "next": tamper(token)}))


# -- match[id] and match[type] (§3.4.1) -----------------------------------------

@pytest.fixture
def mixed(northtel) -> list[dict]:
    """Indicators, malware and an identity, in that order of adding."""
    objects = [indicator(1), malware(2), indicator(3), identity(4), malware(5)]
    publish(northtel, objects)
    return objects


@pytest.mark.parametrize("path", [OBJECTS, MANIFEST], ids=["objects", "manifest"])
def test_match_id_selects_one_or_several_objects(northtel, mixed, path):
    first, _, third, fourth, _ = (o["id"] for o in mixed)
    assert ids(northtel, path, **{"match[id]": third}) == [third]
    assert ids(northtel, path, **{"match[id]": f"{fourth},{first}"}) == [first, fourth]
    assert ids(northtel, path, **{"match[id]": indicator(99)["id"]}) == []


@pytest.mark.parametrize("path", [OBJECTS, MANIFEST], ids=["objects", "manifest"])
def test_match_type_selects_one_or_several_types(northtel, mixed, path):
    def of(*types):
        return [o["id"] for o in mixed if o["type"] in types]

    assert ids(northtel, path, **{"match[type]": "malware"}) == of("malware")
    assert ids(northtel, path, **{"match[type]": "identity,indicator"}) == of("identity", "indicator")


@pytest.mark.parametrize("kind", ["attack-pattern", "x-acme-widget"])
def test_match_type_for_a_type_not_in_the_collection_is_empty_not_an_error(northtel, mixed, kind):
    """§3.4.1: the server MUST NOT error on a STIX 2.1 type; others may simply match nothing."""
    response = get_ok(northtel, OBJECTS, **{"match[type]": kind})
    assert response.json() == {"more": False}


@pytest.mark.parametrize("name, value", [
    ("match[id]", "not-an-id"),
    ("match[id]", ""),
    ("match[id]", f"{indicator(1)['id']},"),
    ("match[type]", "Indicator"),
    ("match[type]", "indicator malware"),
    ("match[type]", ""),
])
def test_malformed_match_id_or_type_is_a_bad_request(northtel, name, value):
    assert_bad_request(northtel.get(OBJECTS, params={name: value}))


# -- match[version] (§3.4.1) ----------------------------------------------------

@pytest.fixture
def versioned(northtel) -> tuple[str, str]:
    """Object A has versions V1, V2, V3; object B has only V2."""
    a, b = indicator(1)["id"], malware(2)["id"]
    publish(northtel, [indicator(1, modified=V1), malware(2, modified=V2)])
    publish(northtel, [indicator(1, modified=V2)])
    publish(northtel, [indicator(1, modified=V3)])
    return a, b


@pytest.mark.parametrize("path", [OBJECTS, MANIFEST], ids=["objects", "manifest"])
@pytest.mark.parametrize("version, expected", [
    pytest.param(None, [("b", V2), ("a", V3)], id="default-is-last"),
    pytest.param("last", [("b", V2), ("a", V3)], id="last"),
    pytest.param("first", [("a", V1), ("b", V2)], id="first"),
    pytest.param("all", [("a", V1), ("b", V2), ("a", V2), ("a", V3)], id="all"),
    pytest.param(V1, [("a", V1)], id="exact"),
    pytest.param(V2, [("b", V2), ("a", V2)], id="exact-shared"),
    pytest.param("2026-02-01T00:00:00Z", [("b", V2), ("a", V2)], id="exact-no-fraction"),
    pytest.param("2026-02-01T00:00:00.000000Z", [("b", V2), ("a", V2)], id="exact-six-digits"),
    pytest.param("2026-02-01T00:00:00.0Z", [("b", V2), ("a", V2)], id="exact-one-digit"),
    pytest.param("2026-02-15T00:00:00.000Z", [], id="exact-no-such-version"),
    pytest.param("first,last", [("a", V1), ("b", V2), ("a", V3)], id="first-and-last"),
    pytest.param(f"{V1},{V3}", [("a", V1), ("a", V3)], id="two-timestamps"),
    pytest.param(f"first,{V2},last", [("a", V1), ("b", V2), ("a", V2), ("a", V3)], id="first-timestamp-last"),
])
def test_match_version_selects_versions(northtel, versioned, path, version, expected):
    """§3.4.1: last (the default), first, all, exact timestamps compared as
    instants, and combinations of them."""
    names = dict(zip(versioned, "ab"))
    params = {"match[version]": version} if version is not None else {}
    assert [(names[i], v) for i, v in listed(northtel, path, **params)] == expected


@pytest.mark.parametrize("version, expected", [
    (None, [V3]), ("first", [V1]), ("all", [V1, V2, V3]), ("2026-02-01T00:00:00Z", [V2]), ("first,last", [V1, V3]),
])
def test_match_version_on_get_an_object(northtel, versioned, version, expected):
    params = {"match[version]": version} if version is not None else {}
    assert [v for _, v in listed(northtel, object_path(versioned[0]), **params)] == expected


@pytest.mark.parametrize("version", [
    pytest.param("all,last", id="all-with-last"),
    pytest.param(f"all,{V1}", id="all-with-timestamp"),
    pytest.param("last,last", id="repeated-keyword"),
    pytest.param(f"{V1},{V1}", id="repeated-timestamp"),
    pytest.param("all,all", id="repeated-all"),
    pytest.param("banana", id="garbage"),
    pytest.param("latest", id="unknown-keyword"),
    pytest.param("", id="empty"),
    pytest.param("last,", id="trailing-comma"),
    pytest.param("2026-02-30T00:00:00Z", id="impossible-date"),
])
def test_a_malformed_match_version_is_a_bad_request(northtel, versioned, version):
    for path in (OBJECTS, MANIFEST, object_path(versioned[0])):
        assert_bad_request(northtel.get(path, params={"match[version]": version}))


# -- match[spec_version] (§3.4.1) -----------------------------------------------

@pytest.mark.parametrize("spec_version, found", [("2.1", True), ("2.0", False), ("2.0,2.1", True)])
def test_match_spec_version(northtel, spec_version, found):
    """Only 2.1 is stored: asking for 2.0 alone matches nothing, on every endpoint."""
    object_id = indicator(1)["id"]
    publish(northtel, [indicator(1), indicator(2)])
    params = {"match[spec_version]": spec_version}
    assert ids(northtel, OBJECTS, **params) == ([object_id, indicator(2)["id"]] if found else [])
    assert ids(northtel, MANIFEST, **params) == ([object_id, indicator(2)["id"]] if found else [])
    assert ids(northtel, object_path(object_id), **params) == ([object_id] if found else [])
    versions = get_ok(northtel, versions_path(object_id), **params).json()
    assert versions == ({"more": False, "versions": [V1]} if found else {"more": False})


@pytest.mark.parametrize("value", ["two", "2", "2.1.0", "", "2.1,"])
def test_a_malformed_match_spec_version_is_a_bad_request(northtel, value):
    assert_bad_request(northtel.get(OBJECTS, params={"match[spec_version]": value}))


# -- which parameters are allowed where (§3.4, endpoint tables) ----------------

@pytest.mark.parametrize("name, value", [
    ("added_after", "2026-01-01T00:00:00Z"),
    ("limit", "5"),
    ("match[id]", indicator(1)["id"]),
    ("match[type]", "indicator"),
    ("match[version]", "all"),
    ("match[spec_version]", "2.1"),
    ("next", "x.y"),
])
def test_a_repeated_parameter_is_a_bad_request(northtel, name, value):
    """§3.4: each parameter at most once."""
    publish(northtel, [indicator(1)])
    assert_bad_request(northtel.get(OBJECTS, params=[(name, value), (name, value)]))


@pytest.mark.parametrize("method, endpoint, name, value", [
    ("get", "versions", "match[type]", "indicator"),
    ("get", "versions", "match[id]", indicator(1)["id"]),
    ("get", "versions", "match[version]", "all"),
    ("get", "object", "match[type]", "indicator"),
    ("get", "object", "match[id]", indicator(1)["id"]),
    ("delete", "object", "added_after", "2026-01-01T00:00:00Z"),
    ("delete", "object", "limit", "1"),
    ("delete", "object", "match[type]", "indicator"),
])
def test_a_filter_not_defined_for_the_endpoint_is_a_bad_request(as_operator, northtel, method, endpoint, name, value):
    """§5.6–§5.8 tables list each endpoint's filters; the rest are refused, and
    a refused DELETE deletes nothing."""
    publish(northtel, [indicator(1)])
    regulator = as_operator("regulator")  # may delete from the community collection
    path = versions_path(indicator(1)["id"]) if endpoint == "versions" else object_path(indicator(1)["id"])
    assert_bad_request(getattr(regulator, method)(path, params={name: value}))
    assert ids(northtel) == [indicator(1)["id"]]


def test_unknown_match_fields_and_parameters_are_ignored(northtel, mixed):
    """§3.4: servers MAY ignore match fields they do not know."""
    expected = ids(northtel, **{"match[type]": "malware"})
    assert ids(northtel, **{"match[type]": "malware", "match[foo]": "bar", "utm_source": "x"}) == expected
    assert ids(northtel, MANIFEST, **{"match[foo]": "bar"}) == ids(northtel, MANIFEST)


# -- filters combined (§3.4: different fields are ANDed) ------------------------

def test_different_filters_are_combined_with_and(northtel, mixed):
    first, second, third, _, fifth = (o["id"] for o in mixed)
    dates = manifest_dates(northtel)
    assert ids(northtel, **{"match[type]": "indicator", "match[id]": second}) == []
    assert ids(northtel, **{"match[type]": "malware", "match[id]": f"{first},{second}"}) == [second]
    assert ids(northtel, **{"match[type]": "indicator,malware", "added_after": dates[1]}) == [third, fifth]
    assert ids(northtel, **{"match[type]": "malware", "match[spec_version]": "2.0"}) == []
    assert ids(northtel, MANIFEST, **{"match[id]": f"{first},{fifth}", "added_after": dates[0]}) == [fifth]


def test_match_id_and_match_version_all_return_every_version_of_that_object(northtel, versioned):
    a, _ = versioned
    assert listed(northtel, **{"match[id]": a, "match[version]": "all"}) == [(a, V1), (a, V2), (a, V3)]
    assert listed(northtel, **{"match[id]": a, "match[version]": "first", "match[type]": "malware"}) == []


# -- polling (§3.5) and empty pages (§3.2) --------------------------------------

def test_polling_with_the_last_date_added_header_sees_each_new_object_exactly_once(northtel, southwave):
    """The poller pattern: ask with added_after = the previous X-TAXII-Date-Added-Last.
    New objects and new versions each show up once; quiet polls keep the place."""
    seen: list[tuple[str, str]] = []
    cursor: str | None = None

    def poll():
        nonlocal cursor
        while True:
            params = {"limit": "3", **({"added_after": cursor} if cursor else {})}
            response = get_ok(northtel, OBJECTS, **params)
            seen.extend((o["id"], o["modified"]) for o in response.json().get("objects", []))
            cursor = response.headers.get(LAST, cursor)
            if not response.json()["more"]:
                return

    poll()
    assert seen == [] and cursor is None
    batches = [
        [indicator(1), indicator(2)],
        [],
        [indicator(3), indicator(4), indicator(5), indicator(6), indicator(7)],
        [indicator(1, modified=V2)],
        [],
        [malware(8), indicator(9)],
    ]
    expected: list[tuple[str, str]] = []
    for batch in batches:
        if batch:
            publish(southwave, batch)
        expected += [(o["id"], o["modified"]) for o in batch]
        poll()
        assert seen == expected


@pytest.mark.parametrize("path", [OBJECTS, MANIFEST, object_path(indicator(1)["id"]),
                                  versions_path(indicator(1)["id"])],
                         ids=["objects", "manifest", "object", "versions"])
def test_an_empty_page_repeats_added_after_in_both_date_headers(northtel, path):
    """Decided policy: an empty 200 echoes added_after (normalised to six
    digits: the last microsecond it covers, here the end of the millisecond it
    names) so a poller keeps its place; with no added_after there are no headers."""
    publish(northtel, [indicator(1)])
    response = get_ok(northtel, path, added_after="2099-01-01T00:00:00Z")
    assert response.json() == {"more": False}
    assert response.headers[FIRST] == response.headers[LAST] == "2099-01-01T00:00:00.000999Z"
    exact = get_ok(northtel, path, added_after="2099-01-01T00:00:00.000001Z")
    assert exact.headers[FIRST] == exact.headers[LAST] == "2099-01-01T00:00:00.000001Z"

    empty = get_ok(northtel, path, **{"match[spec_version]": "2.0"})
    assert empty.json() == {"more": False}
    assert FIRST not in empty.headers and LAST not in empty.headers


def test_an_empty_collection_has_no_date_headers(northtel):
    for path in (OBJECTS, MANIFEST):
        response = get_ok(northtel, path)
        assert response.json() == {"more": False}
        assert FIRST not in response.headers and LAST not in response.headers
