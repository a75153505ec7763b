"""Every TAXII 2.1 endpoint as this server implements it, over real HTTP.

Sections cited are those of TAXII 2.1 (OASIS Standard, 10 June 2021); the
server's own decisions are those listed in the project's conformance checklist.
"""

from __future__ import annotations

import re
import uuid
from urllib.parse import urljoin

import pytest

from conftest import ADVISORIES, COMMUNITY, TAXII, TaxiiSession, envelope, indicator

# The HTTP contract: every case runs once per storage backend.
pytestmark = pytest.mark.every_backend

STIX = "application/stix+json;version=2.1"
TIMESTAMP_6 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
FIRST, LAST = "X-TAXII-Date-Added-First", "X-TAXII-Date-Added-Last"

V1, V2, V3 = "2026-01-01T00:00:00.000Z", "2026-02-01T00:00:00.000Z", "2026-03-01T00:00:00.000Z"


# -- helpers -------------------------------------------------------------------

def objects_path(collection: str = COMMUNITY) -> str:
    return f"/collections/{collection}/objects/"


def object_path(object_id: str, collection: str = COMMUNITY) -> str:
    return f"/collections/{collection}/objects/{object_id}/"


def manifest_path(collection: str = COMMUNITY) -> str:
    return f"/collections/{collection}/manifest/"


def versions_path(object_id: str, collection: str = COMMUNITY) -> str:
    return f"/collections/{collection}/objects/{object_id}/versions/"


def publish(session: TaxiiSession, *objects: dict, collection: str = COMMUNITY) -> dict:
    """POST the objects and return the status resource, asserting they were all stored."""
    response = session.post(objects_path(collection), envelope(*objects))
    assert response.status_code == 202, response.text
    status = response.json()
    assert status["failure_count"] == 0, status
    return status


def manifest_all(session: TaxiiSession, collection: str = COMMUNITY) -> list[dict]:
    """Every manifest record (every version) of the collection, in date_added order."""
    response = session.get(manifest_path(collection), params={"match[version]": "all", "limit": "200"})
    assert response.status_code == 200
    assert response.json()["more"] is False
    return response.json().get("objects", [])


def date_added_of(session: TaxiiSession, collection: str = COMMUNITY) -> dict[tuple[str, str], str]:
    """(object id, version) -> date_added, read from the manifest."""
    return {(r["id"], r["version"]): r["date_added"] for r in manifest_all(session, collection)}


def assert_status_is_consistent(status: dict) -> None:
    """The arithmetic taxii2-client checks before it accepts a status (§4.3.1)."""
    assert status["status"] == "complete"
    assert uuid.UUID(status["id"]).version == 4
    assert TIMESTAMP_6.match(status["request_timestamp"])
    counts = status["success_count"] + status["failure_count"] + status["pending_count"]
    assert counts == status["total_count"]
    for kind, count_name in (("successes", "success_count"), ("failures", "failure_count"),
                             ("pendings", "pending_count")):
        count = status[count_name]
        if kind in status:
            assert len(status[kind]) == count > 0  # lists are never empty (§2)
            assert all({"id", "version"} <= set(detail) for detail in status[kind])
        else:
            assert count == 0


# -- discovery and API root (§4.1, §4.2) ----------------------------------------

def test_discovery_names_the_server_and_a_relative_default_api_root(server, northtel):
    """§4.1.1: `title` is required, `default` is one of `api_roots`, relative
    roots start with a single `/` and carry no query."""
    response = northtel.get(f"{server.url}/taxii2/")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == TAXII
    discovery = response.json()
    assert discovery["title"] == "Test exchange"
    assert discovery["api_roots"] == ["/api/"]
    assert discovery["default"] in discovery["api_roots"]
    for root in discovery["api_roots"]:
        assert root.startswith("/") and not root.startswith("//") and "?" not in root


def test_the_advertised_api_root_resolves_to_a_working_api_root(server, northtel):
    """A client resolves a relative root against the discovery URL (§4.1.1)."""
    discovery_url = f"{server.url}/taxii2/"
    root_url = urljoin(discovery_url, northtel.get(discovery_url).json()["default"])
    assert root_url == f"{server.url}/api/"
    assert northtel.get(root_url).status_code == 200


def test_api_root_lists_taxii_2_1_and_its_max_content_length(northtel):
    """§4.2.1: `versions` contains application/taxii+json;version=2.1 and
    `max_content_length` is the configured positive integer."""
    response = northtel.get("/")
    assert response.status_code == 200
    root = response.json()
    assert root["title"] == "Test root"
    assert TAXII in root["versions"]
    assert all("version=" in media_type for media_type in root["versions"])
    assert root["max_content_length"] == 65536


# -- collections (§5.1, §5.2) ---------------------------------------------------

@pytest.mark.parametrize("operator, aliases", [
    ("regulator", ["advisories", "community", "northtel-reports", "southwave-reports"]),
    ("northtel", ["advisories", "community", "northtel-reports"]),
    ("southwave", ["advisories", "community", "southwave-reports"]),
])
def test_collections_lists_only_visible_collections_in_a_consistent_order(as_operator, operator, aliases):
    """§5.1 and §3.3: only collections the caller may read or write, always in the same order."""
    session = as_operator(operator)
    listings = [session.get("/collections/") for _ in range(3)]
    assert all(response.status_code == 200 for response in listings)
    orders = [[c["alias"] for c in response.json()["collections"]] for response in listings]
    assert orders == [aliases] * 3


@pytest.mark.parametrize("operator, alias, can_read, can_write", [
    ("regulator", "advisories", True, True),
    ("northtel", "advisories", True, False),
    ("northtel", "community", True, True),
    ("regulator", "community", True, True),
    ("northtel", "northtel-reports", True, True),
    ("regulator", "northtel-reports", True, True),
])
def test_can_read_and_can_write_are_the_callers_own_rights(as_operator, operator, alias, can_read, can_write):
    """The collection resource tells the caller what it may do, in the list,
    by id and by alias (§5.2.1)."""
    session = as_operator(operator)
    listed = {c["alias"]: c for c in session.get("/collections/").json()["collections"]}[alias]
    by_id = session.get(f"/collections/{listed['id']}/").json()
    by_alias = session.get(f"/collections/{alias}/").json()
    assert listed == by_id == by_alias
    assert (listed["can_read"], listed["can_write"]) == (can_read, can_write)


def test_a_collection_resource_has_id_title_alias_and_media_types(settings, regulator):
    """§5.2.1: required `id`, `title`, `can_read`, `can_write`; `media_types`
    lists what the collection stores."""
    reports = settings.collection("northtel-reports")
    for collection_id, alias in [(ADVISORIES, "advisories"), (COMMUNITY, "community"),
                                 (reports.id, "northtel-reports")]:
        resource = regulator.get(f"/collections/{collection_id}/").json()
        assert resource["id"] == collection_id
        assert uuid.UUID(resource["id"]).version == 4
        assert resource["alias"] == alias
        assert isinstance(resource["title"], str) and resource["title"]
        assert resource["media_types"] == [STIX]


@pytest.mark.parametrize("path", ["/collections/{id}/", "/collections/{alias}/"])
def test_another_licensees_reports_collection_is_not_found(settings, southwave, path):
    reports = settings.collection("northtel-reports")
    response = southwave.get(path.format(id=reports.id, alias=reports.alias))
    assert response.status_code == 404
    assert response.json()["http_status"] == "404"


def test_an_unknown_collection_is_not_found(northtel):
    assert northtel.get(f"/collections/{uuid.uuid4()}/").status_code == 404
    assert northtel.get("/collections/no-such-alias/").status_code == 404


# -- manifest (§5.3) ------------------------------------------------------------

def test_manifest_has_one_record_per_latest_version_in_date_added_order(northtel):
    """§5.3.1: id, date_added, version (= modified) and media_type; ascending date_added."""
    publish(northtel, indicator(1, modified=V1), indicator(2, modified=V1))
    publish(northtel, indicator(1, modified=V2))
    response = northtel.get(manifest_path())
    assert response.status_code == 200
    manifest = response.json()
    assert manifest["more"] is False
    records = manifest["objects"]
    assert [(r["id"], r["version"]) for r in records] == [(indicator(2)["id"], V1), (indicator(1)["id"], V2)]
    for record in records:
        assert set(record) == {"id", "date_added", "version", "media_type"}
        assert TIMESTAMP_6.match(record["date_added"])
        assert record["media_type"] == STIX
    assert records[0]["date_added"] < records[1]["date_added"]


def test_manifest_of_an_alias_url_matches_the_id_url(northtel):
    publish(northtel, indicator(1))
    assert northtel.get(manifest_path("community")).json() == northtel.get(manifest_path()).json()


# -- objects (§5.4, §5.5) -------------------------------------------------------

def test_get_objects_returns_the_stored_objects_in_an_envelope(northtel):
    sent = [indicator(1), indicator(2), indicator(3)]
    publish(northtel, *sent)
    response = northtel.get(objects_path())
    assert response.status_code == 200
    page = response.json()
    assert page["more"] is False
    assert "next" not in page
    assert page["objects"] == sent


def test_an_empty_collection_answers_an_empty_envelope(northtel):
    """§3.7, §5.4: no `objects` key (empty lists are prohibited, §2)."""
    response = northtel.get(objects_path())
    assert response.status_code == 200
    assert response.json() == {"more": False}


@pytest.mark.parametrize("objects, successes, failures", [
    pytest.param([indicator(1)], 1, 0, id="one-valid"),
    pytest.param([indicator(1), indicator(2), indicator(3)], 3, 0, id="three-valid"),
    pytest.param([indicator(1), {"type": "indicator", "id": f"indicator--{uuid.UUID(int=9, version=4)}"}], 1, 1,
                 id="valid-and-invalid"),
    pytest.param([{"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.UUID(int=9, version=4)}",
                   "created": V1, "modified": V1}], 0, 1, id="only-invalid"),
    pytest.param([indicator(1), indicator(1)], 2, 0, id="same-object-twice"),
    pytest.param([indicator(1), indicator(1, name="changed")], 1, 1, id="same-version-different-content"),
])
def test_post_answers_202_with_a_consistent_status_resource(northtel, objects, successes, failures):
    """§5.5: 202 + status; counts add up and list lengths equal counts (§4.3.1)."""
    response = northtel.post(objects_path(), envelope(*objects))
    assert response.status_code == 202
    assert response.headers["Content-Type"] == TAXII
    status = response.json()
    assert_status_is_consistent(status)
    assert (status["total_count"], status["success_count"], status["failure_count"]) == \
        (len(objects), successes, failures)
    for failure in status.get("failures", []):
        assert failure["message"]


def test_status_can_be_read_back_by_the_operator_that_posted(northtel):
    posted = northtel.post(objects_path(), envelope(indicator(1))).json()
    response = northtel.get(f"/status/{posted['id']}/")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == TAXII
    assert response.json() == posted
    assert posted["successes"] == [{"id": indicator(1)["id"], "version": V1}]


@pytest.mark.parametrize("reader", ["southwave", "regulator"])
def test_another_operator_cannot_read_a_status(as_operator, northtel, reader):
    posted = northtel.post(objects_path(), envelope(indicator(1))).json()
    response = as_operator(reader).get(f"/status/{posted['id']}/")
    assert response.status_code == 404
    assert response.json()["http_status"] == "404"


@pytest.mark.parametrize("status_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_an_unknown_status_is_not_found(northtel, status_id):
    response = northtel.get(f"/status/{status_id}/")
    assert response.status_code == 404
    assert response.headers["Content-Type"] == TAXII


def test_a_stix_bundle_is_accepted_as_well_as_an_envelope(northtel):
    """stix2's TAXIICollectionSink posts a whole bundle (checklist V4)."""
    bundle = {"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": [indicator(1), indicator(2)]}
    response = northtel.post(objects_path(), bundle)
    assert response.status_code == 202
    assert response.json()["success_count"] == 2
    assert northtel.get(objects_path()).json()["objects"] == [indicator(1), indicator(2)]


def test_an_exact_duplicate_is_a_success_and_stores_nothing_new(northtel, southwave):
    """§5.5: an exact duplicate MUST NOT produce an error for that object."""
    publish(northtel, indicator(1))
    before = manifest_all(northtel)
    status = southwave.post(objects_path(), envelope(indicator(1))).json()
    assert_status_is_consistent(status)
    assert status["success_count"] == 1 and status["failure_count"] == 0
    assert status["successes"][0]["id"] == indicator(1)["id"]
    assert status["successes"][0]["version"] == V1
    assert "duplicate" in status["successes"][0]["message"]
    assert manifest_all(northtel) == before  # same count, same date_added


def test_same_id_and_version_with_different_content_is_a_failure(northtel):
    """Every (id, version) has one content: the first stored stays."""
    publish(northtel, indicator(1))
    status = northtel.post(objects_path(), envelope(indicator(1, name="rewritten"))).json()
    assert status["failure_count"] == 1 and status["success_count"] == 0
    assert status["failures"][0]["id"] == indicator(1)["id"]
    assert status["failures"][0]["version"] == V1
    assert status["failures"][0]["message"]
    assert northtel.get(object_path(indicator(1)["id"])).json()["objects"] == [indicator(1)]


def test_every_version_is_kept(northtel):
    """Versions posted together and apart are all stored and all served."""
    publish(northtel, indicator(1, modified=V1), indicator(1, modified=V3))
    publish(northtel, indicator(1, modified=V2))
    object_id = indicator(1)["id"]
    versions = northtel.get(versions_path(object_id)).json()["versions"]
    assert sorted(versions) == [V1, V2, V3]
    everything = northtel.get(objects_path(), params={"match[version]": "all"}).json()["objects"]
    assert sorted(o["modified"] for o in everything) == [V1, V2, V3]
    assert len(manifest_all(northtel)) == 3


# -- one object (§5.6, §5.7) ----------------------------------------------------

def test_get_object_returns_its_latest_version_in_an_envelope(northtel):
    publish(northtel, indicator(1, modified=V1), indicator(1, modified=V2), indicator(2))
    response = northtel.get(object_path(indicator(1)["id"]))
    assert response.status_code == 200
    assert response.json() == {"more": False, "objects": [indicator(1, modified=V2)]}


def test_get_object_with_all_versions_returns_each_version(northtel):
    publish(northtel, indicator(1, modified=V1), indicator(1, modified=V2))
    page = northtel.get(object_path(indicator(1)["id"]), params={"match[version]": "all"}).json()
    assert page["objects"] == [indicator(1, modified=V1), indicator(1, modified=V2)]


@pytest.mark.parametrize("object_id", [indicator(77)["id"], "not-a-stix-id"])
def test_get_an_unknown_object_is_not_found(northtel, object_id):
    publish(northtel, indicator(1))
    response = northtel.get(object_path(object_id))
    assert response.status_code == 404
    assert response.headers["Content-Type"] == TAXII
    assert response.json()["http_status"] == "404"


def test_a_known_object_whose_versions_are_all_filtered_out_is_an_empty_envelope(northtel):
    publish(northtel, indicator(1, modified=V1))
    response = northtel.get(object_path(indicator(1)["id"]), params={"match[version]": V2})
    assert response.status_code == 200
    assert response.json() == {"more": False}


def test_delete_removes_the_object_from_every_endpoint(regulator, northtel):
    """§5.7: 200 without a body; afterwards Get an Object is 404 and the
    object is gone from objects and manifest."""
    publish(northtel, indicator(1, modified=V1), indicator(1, modified=V2), indicator(2))
    object_id = indicator(1)["id"]
    response = regulator.delete(object_path(object_id))
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["Content-Type"] == TAXII

    assert northtel.get(object_path(object_id)).status_code == 404
    assert northtel.get(versions_path(object_id)).status_code == 404
    assert [o["id"] for o in northtel.get(objects_path(), params={"match[version]": "all"}).json()["objects"]] == \
        [indicator(2)["id"]]
    assert [r["id"] for r in manifest_all(northtel)] == [indicator(2)["id"]]
    assert regulator.delete(object_path(object_id)).status_code == 404


def test_deleting_the_latest_version_makes_the_previous_one_the_last(regulator, northtel):
    publish(northtel, indicator(1, modified=V1), indicator(1, modified=V2), indicator(1, modified=V3))
    object_id = indicator(1)["id"]
    assert regulator.delete(object_path(object_id), params={"match[version]": V3}).status_code == 200

    assert northtel.get(object_path(object_id)).json()["objects"] == [indicator(1, modified=V2)]
    assert northtel.get(objects_path()).json()["objects"] == [indicator(1, modified=V2)]
    assert [r["version"] for r in northtel.get(manifest_path()).json()["objects"]] == [V2]
    assert northtel.get(versions_path(object_id)).json()["versions"] == [V1, V2]
    # "last" now means V2: deleting it leaves V1 alone.
    assert regulator.delete(object_path(object_id), params={"match[version]": "last"}).status_code == 200
    assert northtel.get(object_path(object_id)).json()["objects"] == [indicator(1, modified=V1)]


def test_deleting_an_unknown_object_is_not_found(regulator):
    response = regulator.delete(object_path(indicator(5)["id"]))
    assert response.status_code == 404
    assert response.headers["Content-Type"] == TAXII


# -- versions (§5.8) ------------------------------------------------------------

def test_versions_lists_every_version_in_date_added_order(northtel):
    """Versions come in the order they were added, not sorted by version."""
    for modified in (V2, V1, V3):
        publish(northtel, indicator(1, modified=modified))
    response = northtel.get(versions_path(indicator(1)["id"]))
    assert response.status_code == 200
    assert response.json() == {"more": False, "versions": [V2, V1, V3]}


def test_versions_of_an_unknown_object_is_not_found(northtel):
    publish(northtel, indicator(1))
    response = northtel.get(versions_path(indicator(2)["id"]))
    assert response.status_code == 404
    assert response.json()["http_status"] == "404"


# -- X-TAXII-Date-Added-* (§3.2) ------------------------------------------------

def _page_keys(endpoint: str, body: dict, object_id: str) -> list[tuple[str, str]]:
    """(id, version) of each record of a page, whatever the endpoint."""
    if endpoint == "manifest":
        return [(r["id"], r["version"]) for r in body["objects"]]
    if endpoint == "versions":
        return [(object_id, version) for version in body["versions"]]
    return [(o["id"], o["modified"]) for o in body["objects"]]


@pytest.mark.parametrize("endpoint", ["objects", "manifest", "object", "versions"])
def test_date_added_headers_are_those_of_the_first_and_last_record_of_the_page(northtel, endpoint):
    """§3.2: on every 200, the headers are the date_added of the first and last
    records of this response (of the page, not of the collection)."""
    object_id = indicator(1)["id"]
    publish(northtel, indicator(1, modified=V1), indicator(2))
    publish(northtel, indicator(1, modified=V2))
    publish(northtel, indicator(1, modified=V3), indicator(3))
    added = date_added_of(northtel)
    path = {"objects": objects_path(), "manifest": manifest_path(),
            "object": object_path(object_id), "versions": versions_path(object_id)}[endpoint]
    every = {} if endpoint == "versions" else {"match[version]": "all"}

    for params, size in [(every, 5 if endpoint in ("objects", "manifest") else 3),
                         ({**every, "limit": "2"}, 2)]:
        response = northtel.get(path, params=params)
        assert response.status_code == 200
        keys = _page_keys(endpoint, response.json(), object_id)
        assert len(keys) == size
        assert response.headers[FIRST] == added[keys[0]]
        assert response.headers[LAST] == added[keys[-1]]
        assert added[keys[0]] < added[keys[-1]]
        assert TIMESTAMP_6.match(response.headers[FIRST]) and TIMESTAMP_6.match(response.headers[LAST])


# -- responses are TAXII, whatever happens (§3.1, §3.6) ------------------------

REQUESTS = [
    # (id, operator or None, method, path, extra, expected status)
    ("discovery", "northtel", "get", "{base}/taxii2/", {}, 200),
    ("api-root", "northtel", "get", "/", {}, 200),
    ("collections", "northtel", "get", "/collections/", {}, 200),
    ("collection", "northtel", "get", "/collections/community/", {}, 200),
    ("manifest", "northtel", "get", "/collections/community/manifest/", {}, 200),
    ("objects", "northtel", "get", "/collections/community/objects/", {}, 200),
    ("object", "northtel", "get", "/collections/community/objects/{object_id}/", {}, 200),
    ("versions", "northtel", "get", "/collections/community/objects/{object_id}/versions/", {}, 200),
    ("status", "northtel", "get", "/status/{status_id}/", {}, 200),
    ("post", "northtel", "post", "/collections/community/objects/", {"body": envelope(indicator(2))}, 202),
    ("delete", "regulator", "delete", "/collections/community/objects/{object_id}/", {}, 200),
    ("bad-filter", "northtel", "get", "/collections/community/objects/", {"params": {"limit": "0"}}, 400),
    ("no-credentials", None, "get", "/collections/", {}, 401),
    ("read-only-post", "northtel", "post", "/collections/advisories/objects/",
     {"body": envelope(indicator(2))}, 403),
    ("no-delete-right", "northtel", "delete", "/collections/community/objects/{object_id}/", {}, 403),
    ("invisible", "southwave", "get", "/collections/northtel-reports/objects/", {}, 404),
    ("unknown-url", "northtel", "get", "/nothing-here/", {}, 404),
    ("wrong-method", "northtel", "put", "/collections/", {}, 405),
    ("not-acceptable", "northtel", "get", "/collections/", {"headers": {"Accept": "application/json"}}, 406),
    ("too-large", "northtel", "post", "/collections/community/objects/", {"body": "x" * 70000}, 413),
    ("wrong-content-type", "northtel", "post", "/collections/community/objects/",
     {"body": envelope(indicator(2)), "headers": {"Content-Type": "application/json"}}, 415),
    ("unprocessable", "northtel", "post", "/collections/community/objects/", {"body": "not json"}, 422),
]


@pytest.mark.parametrize("operator, method, path, extra, expected",
                         [pytest.param(*request[1:], id=request[0]) for request in REQUESTS])
def test_every_response_is_application_taxii_json_version_2_1(server, as_operator,
                                                              operator, method, path, extra, expected):
    """§3.1: every response carries Content-Type application/taxii+json;version=2.1,
    and every error body is an error resource whose http_status is the status (§3.6.1)."""
    status = publish(as_operator("northtel"), indicator(1))
    session = as_operator(operator) if operator else TaxiiSession(server.url, None)
    url = path.format(base=server.url, object_id=indicator(1)["id"], status_id=status["id"])
    extra = dict(extra)
    if method == "post":
        response = session.post(url, extra.pop("body"), **extra)
    elif method == "put":
        response = session.http.put(session.api + url, **extra)
    else:
        response = getattr(session, method)(url, **extra)
    assert response.status_code == expected, response.text
    assert response.headers["Content-Type"] == TAXII
    if expected >= 400:
        error = response.json()
        assert error["http_status"] == str(expected)
        assert isinstance(error["title"], str) and error["title"]


# -- request paths without the trailing slash (§3.1, checklist N1) -------------

@pytest.mark.parametrize("path", [
    "{base}/taxii2",
    "{base}/api",
    "/collections",
    "/collections/community",
    "/collections/community/manifest",
    "/collections/community/objects",
    "/collections/community/objects/{object_id}",
    "/collections/community/objects/{object_id}/versions",
    "/status/{status_id}",
])
def test_get_paths_without_the_trailing_slash_are_served(server, northtel, path):
    """§3.1 makes the slash a client duty; clients that drop it get the same
    TAXII answer, not a redirect."""
    status = publish(northtel, indicator(1))
    url = path.format(base=server.url, object_id=indicator(1)["id"], status_id=status["id"])
    response = northtel.get(url, allow_redirects=False)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == TAXII
    assert response.json() == northtel.get(url + "/").json()


def test_post_and_delete_without_the_trailing_slash_are_served(northtel, regulator):
    response = northtel.post(objects_path().rstrip("/"), envelope(indicator(1)))
    assert response.status_code == 202
    assert response.json()["success_count"] == 1
    response = regulator.delete(object_path(indicator(1)["id"]).rstrip("/"), allow_redirects=False)
    assert response.status_code == 200
    assert northtel.get(object_path(indicator(1)["id"])).status_code == 404
