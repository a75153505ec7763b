"""Interoperability: the reference TAXII 2.1 client (taxii2-client) and the
STIX 2 library's TAXII data store, talking to the server on a real socket.

Everything here goes through the libraries' own request building and response
checks (Accept and Content-Type negotiation, envelope and status parsing,
paging with `next`), so a deviation from TAXII 2.1 that those clients rely on
breaks a test. A response hook records the exchanges where a test needs to
say what the library actually sent.
"""

from __future__ import annotations

import json
from itertools import islice

import pytest
import stix2
from requests.exceptions import HTTPError
from stix2.datastore import DataSourceError
from taxii2client.common import TokenAuth
from taxii2client.exceptions import AccessError
from taxii2client.v21 import ApiRoot, Collection, Server, as_pages

from conftest import ADVISORIES, COMMUNITY, TAXII, indicator

# The HTTP contract: every case runs once per storage backend.
pytestmark = pytest.mark.every_backend

# A POST envelope of this many test indicators stays well under max_content_length (65536).
BATCH = 100
# as_pages is read through islice(..., MAX_PAGES): a server that never ends paging fails the test, not hangs it.
MAX_PAGES = 20


# --- helpers --------------------------------------------------------------------------------------

def discovery(server, keys, operator: str, auth: str = "basic") -> Server:
    """A taxii2-client Server: Basic (user = operator id, password = key) or TokenAuth."""
    url = f"{server.url}/taxii2/"
    if auth == "basic":
        return Server(url, user=operator, password=keys[operator])
    return Server(url, auth=TokenAuth(keys[operator]))


def api_root(server, keys, operator: str) -> ApiRoot:
    return ApiRoot(f"{server.url}/api/", user=operator, password=keys[operator])


def collection(server, keys, operator: str, collection_id: str) -> Collection:
    """The client's Collection, as listed for `operator` by GET {api-root}/collections/."""
    listed = {c.id: c for c in api_root(server, keys, operator).collections}
    return listed[collection_id]


def add_all(target: Collection, objects: list[dict]) -> None:
    """Publish through the client, a batch at a time, every object accepted."""
    for start in range(0, len(objects), BATCH):
        batch = objects[start:start + BATCH]
        status = target.add_objects({"objects": batch})
        assert (status.status, status.success_count, status.failure_count) == ("complete", len(batch), 0)


def record_exchanges(target: Collection) -> list:
    """Keep every response the client's session receives (with its request) in a list."""
    seen = []
    target._conn.session.hooks["response"].append(lambda response, *args, **kwargs: seen.append(response))
    return seen


def ids_of(envelope: dict) -> list[str]:
    return [o["id"] for o in envelope.get("objects", [])]


def stix_indicator(name: str, **extra) -> stix2.Indicator:
    return stix2.Indicator(name=name, pattern="[domain-name:value = 'bad.example']", pattern_type="stix",
                           valid_from="2026-01-01T00:00:00Z", **extra)


# --- discovery, API root, collections ------------------------------------------------------------

@pytest.mark.parametrize("auth", ["basic", "token"])
def test_the_client_discovers_the_api_root(server, keys, auth):
    """§4.1, §4.2: discovery names the API root; the client follows it with the same credentials."""
    found = discovery(server, keys, "northtel", auth)
    assert found.title == "Test exchange"
    assert [root.url for root in found.api_roots] == [f"{server.url}/api/"]
    assert found.default is found.api_roots[0]

    root = found.api_roots[0]
    assert root.title == "Test root"
    assert "application/taxii+json;version=2.1" in root.versions
    assert root.max_content_length == 65536
    assert {c.alias for c in root.collections} >= {"advisories", "community", "northtel-reports"}


@pytest.mark.parametrize("credentials", [
    pytest.param(lambda keys: {"user": "northtel", "password": "tx_000000000000_" + "A" * 43}, id="unknown key"),
    pytest.param(lambda keys: {"user": "southwave", "password": keys["northtel"]}, id="basic user not the key's"),
    pytest.param(lambda keys: {"auth": TokenAuth("not-a-key")}, id="malformed token"),
])
def test_the_client_sees_401_for_bad_credentials(server, keys, credentials):
    """§8.2.2, G9: missing or unacceptable credentials are refused with 401 and a challenge."""
    client = Server(f"{server.url}/taxii2/", **credentials(keys))
    with pytest.raises(HTTPError) as refused:
        client.refresh()
    assert refused.value.response.status_code == 401
    assert "WWW-Authenticate" in refused.value.response.headers


@pytest.mark.parametrize("operator, expected", [
    ("northtel", {"advisories": (True, False), "community": (True, True), "northtel-reports": (True, True)}),
    ("southwave", {"advisories": (True, False), "community": (True, True), "southwave-reports": (True, True)}),
    ("regulator", {"advisories": (True, True), "community": (True, True),
                   "northtel-reports": (True, True), "southwave-reports": (True, True)}),
])
def test_client_collections_carry_each_operators_own_rights(server, keys, operator, expected):
    """§5.1, §5.2: can_read/can_write are the caller's rights; invisible collections are not listed."""
    listed = api_root(server, keys, operator).collections
    assert {c.alias: (c.can_read, c.can_write) for c in listed} == expected
    for item in listed:
        # The single-collection endpoint agrees with the listing.
        alone = Collection(item.url, user=operator, password=keys[operator])
        assert (alone.id, alone.can_read, alone.can_write) == (item.id, item.can_read, item.can_write)


def test_the_client_will_not_write_where_the_server_grants_no_write(server, keys):
    """A licensee's client, told can_write=false for advisories, refuses to POST there."""
    advisories = collection(server, keys, "northtel", ADVISORIES)
    with pytest.raises(AccessError):
        advisories.add_objects({"objects": [indicator(1)]})


def test_a_collection_invisible_to_the_operator_is_404_for_the_client(server, keys, settings):
    """§5.2 and the rights model: another licensee's reports do not exist for this caller."""
    url = f"{server.url}/api/collections/{settings.collection('southwave-reports').id}/"
    with pytest.raises(HTTPError) as hidden:
        Collection(url, user="northtel", password=keys["northtel"]).refresh()
    assert hidden.value.response.status_code == 404


# --- add, get, page -------------------------------------------------------------------------------

def test_add_objects_returns_a_complete_status_with_counts(server, keys):
    """§5.4, §4.3: the status resource is complete at once, with per-object outcomes."""
    community = collection(server, keys, "northtel", COMMUNITY)
    broken = {**indicator(3), "pattern": "this is not a STIX pattern"}
    status = community.add_objects({"objects": [indicator(1), indicator(2), broken]}, wait_for_completion=True)

    assert status.status == "complete"
    assert (status.total_count, status.success_count, status.failure_count, status.pending_count) == (3, 2, 1, 0)
    assert {s["id"] for s in status.successes} == {indicator(1)["id"], indicator(2)["id"]}
    assert [f["id"] for f in status.failures] == [broken["id"]]
    assert status.failures[0]["message"]

    # The same status through the status endpoint.
    again = api_root(server, keys, "northtel").get_status(status.id)
    assert (again.id, again.status, again.success_count, again.failure_count) == (status.id, "complete", 2, 1)


def test_re_adding_the_same_objects_is_a_success_reported_as_duplicate(server, keys):
    """Exact duplicates succeed with a message, so a client retrying a POST sees no failure."""
    community = collection(server, keys, "northtel", COMMUNITY)
    community.add_objects({"objects": [indicator(1)]})
    status = community.add_objects({"objects": [indicator(1)]})
    assert (status.success_count, status.failure_count) == (1, 0)
    assert status.successes[0]["message"] == "already stored (exact duplicate)"


def test_get_objects_and_get_object_return_what_was_added(server, keys):
    """§5.3, §5.5: objects come back as sent; GET object defaults to the latest version."""
    community = collection(server, keys, "northtel", COMMUNITY)
    first, latest = indicator(1), indicator(1, modified="2026-03-01T00:00:00.000Z")
    community.add_objects({"objects": [first, latest, indicator(2)]})

    listing = community.get_objects()
    assert listing["more"] is False
    assert sorted(ids_of(listing)) == sorted([indicator(1)["id"], indicator(2)["id"]])

    one = community.get_object(first["id"])
    assert one["objects"] == [latest]
    assert ids_of(community.get_object(first["id"], version="all")) == [first["id"]] * 2
    assert community.get_object(first["id"], version="first")["objects"] == [first]
    assert ids_of(community.get_objects(type="indicator", id=indicator(2)["id"])) == [indicator(2)["id"]]


@pytest.mark.parametrize("per_request, expected_pages", [(7, 5), (30, 1), (0, 1)])
def test_as_pages_visits_every_object_exactly_once(server, keys, per_request, expected_pages):
    """§3.4, §3.5: the client's pager follows `next` until more is false (0 = server default limit)."""
    community = collection(server, keys, "northtel", COMMUNITY)
    objects = [indicator(n) for n in range(30)]
    add_all(community, objects)

    pages = list(islice(as_pages(community.get_objects, per_request=per_request), MAX_PAGES))
    seen = [object_id for page in pages for object_id in ids_of(page)]
    assert len(pages) == expected_pages
    assert sorted(seen) == sorted(o["id"] for o in objects)
    assert all(page["more"] for page in pages[:-1]) and pages[-1]["more"] is False


def test_as_pages_adapts_when_the_server_caps_the_page_size(server, keys):
    """§3.4: a limit above the server's max (200) is clamped; the client follows `next` with the
    smaller page size and still sees each object once."""
    community = collection(server, keys, "regulator", COMMUNITY)
    objects = [indicator(n) for n in range(230)]
    add_all(community, objects)

    pages = list(islice(as_pages(community.get_objects, per_request=1000), MAX_PAGES))
    assert [len(page["objects"]) for page in pages] == [200, 30]
    seen = [object_id for page in pages for object_id in ids_of(page)]
    assert len(seen) == len(set(seen)) == 230


def test_as_pages_over_the_manifest(server, keys):
    """§5.6: the manifest pages like objects, one record per object version."""
    community = collection(server, keys, "northtel", COMMUNITY)
    objects = [indicator(n) for n in range(12)]
    add_all(community, objects)

    records = [record for page in islice(as_pages(community.get_manifest, per_request=5), MAX_PAGES)
               for record in page["objects"]]
    assert sorted(r["id"] for r in records) == sorted(o["id"] for o in objects)
    assert {r["version"] for r in records} == {"2026-01-01T00:00:00.000Z"}
    assert {r["media_type"] for r in records} == {"application/stix+json;version=2.1"}
    assert [r["date_added"] for r in records] == sorted(r["date_added"] for r in records)


def test_object_versions_lists_every_version(server, keys):
    """§5.8: the versions endpoint lists each stored version of the object."""
    community = collection(server, keys, "northtel", COMMUNITY)
    stamps = ["2026-01-01T00:00:00.000Z", "2026-02-01T00:00:00.000Z", "2026-03-01T00:00:00.000Z"]
    community.add_objects({"objects": [indicator(1, modified=stamp) for stamp in stamps]})

    versions = community.object_versions(indicator(1)["id"])
    assert versions["more"] is False
    # Each version is the object's own `modified`, listed in date_added order (§3.3).
    assert versions["versions"] == stamps


def test_delete_object_through_the_client(server, keys):
    """§5.7: a licensee may not delete from community (403); the regulator may, and the object is gone."""
    northtel_view = collection(server, keys, "northtel", COMMUNITY)
    northtel_view.add_objects({"objects": [indicator(1), indicator(2)]})
    with pytest.raises(HTTPError) as refused:
        northtel_view.delete_object(indicator(1)["id"])
    assert refused.value.response.status_code == 403

    regulator_view = collection(server, keys, "regulator", COMMUNITY)
    regulator_view.delete_object(indicator(1)["id"])
    for read in (northtel_view.get_object, northtel_view.object_versions):
        with pytest.raises(HTTPError) as gone:
            read(indicator(1)["id"])
        assert gone.value.response.status_code == 404
    assert ids_of(northtel_view.get_objects()) == [indicator(2)["id"]]


# --- the stix2 library's TAXII data store --------------------------------------------------------

def test_stix2_sink_sends_a_bundle_and_the_source_reads_it_back(server, keys):
    """stix2.TAXIICollectionSink wraps each object in a STIX bundle; the server accepts bundles."""
    target = collection(server, keys, "northtel", COMMUNITY)
    exchanges = record_exchanges(target)
    sent = stix_indicator("phishing domain")

    stix2.TAXIICollectionSink(target).add(sent)

    post = exchanges[-1]
    assert post.request.method == "POST" and post.status_code == 202
    assert post.request.headers["Content-Type"] == TAXII
    body = json.loads(post.request.body)
    assert body["type"] == "bundle" and [o["id"] for o in body["objects"]] == [sent.id]
    assert post.json()["success_count"] == 1

    back = stix2.TAXIICollectionSource(target).get(sent.id)
    assert json.loads(back.serialize()) == json.loads(sent.serialize())


def test_stix2_source_get_of_an_unknown_id_is_none(server, keys):
    """The server answers 404 for an unknown object id, which the source turns into None."""
    target = collection(server, keys, "northtel", COMMUNITY)
    exchanges = record_exchanges(target)
    assert stix2.TAXIICollectionSource(target).get(indicator(99)["id"]) is None
    assert exchanges[-1].status_code == 404


def test_stix2_source_all_versions(server, keys):
    """all_versions asks for match[id] with match[version]=all and gets every version."""
    target = collection(server, keys, "northtel", COMMUNITY)
    sink, source = stix2.TAXIICollectionSink(target), stix2.TAXIICollectionSource(target)
    first = stix_indicator("c2 server")
    second = first.new_version(name="c2 server (confirmed)")
    sink.add([first, second])

    versions = source.all_versions(first.id)
    assert sorted(v.modified for v in versions) == sorted([first.modified, second.modified])
    assert source.get(first.id).name == "c2 server (confirmed)"


def test_stix2_source_query_filters_on_type_at_the_server(server, keys):
    """A Filter on type becomes match[type], applied by the server."""
    target = collection(server, keys, "northtel", COMMUNITY)
    sink = stix2.TAXIICollectionSink(target)
    wanted = stix_indicator("exfiltration endpoint")
    sink.add([wanted, stix2.Malware(name="dropper", is_family=False), stix2.Identity(name="NorthTel SOC")])

    exchanges = record_exchanges(target)
    found = stix2.TAXIICollectionSource(target).query([stix2.Filter("type", "=", "indicator")])
    assert [o.id for o in found] == [wanted.id]
    assert exchanges and all("match%5Btype%5D=indicator" in r.request.url for r in exchanges)


def test_stix2_source_query_reads_past_the_server_page_cap(server, keys):
    """The source asks for 5000 per page; the server caps at 200 and the source follows `next`."""
    target = collection(server, keys, "regulator", COMMUNITY)
    add_all(target, [indicator(n) for n in range(230)])
    found = stix2.TAXIICollectionSource(target).query([stix2.Filter("type", "=", "indicator")])
    assert len({o.id for o in found}) == 230


def test_stix2_store_refuses_a_collection_without_the_right(server, keys, settings):
    """The sink needs can_write; a collection the operator cannot see cannot back a source."""
    with pytest.raises(DataSourceError):
        stix2.TAXIICollectionSink(collection(server, keys, "northtel", ADVISORIES))
    hidden = Collection(f"{server.url}/api/collections/{settings.collection('southwave-reports').id}/",
                        user="northtel", password=keys["northtel"])
    with pytest.raises(DataSourceError):
        stix2.TAXIICollectionSource(hidden)
