"""Who may see, read, write and delete what: the rights matrix over real HTTP.

The expected answers come from the table of rights below (the deployment in
architecture.md, "Default collections") and the rules of TAXII 2.1: an
invisible collection is 404 everywhere, a visible one without the needed right
is 403 (§5.2-§5.8), and DELETE follows the fixed matrix of §5.7.
"""

from __future__ import annotations

import uuid

import pytest

from conftest import ADVISORIES, COMMUNITY, envelope, indicator

# The HTTP contract: every case runs once per storage backend.
pytestmark = pytest.mark.every_backend

OPERATOR_IDS = ("regulator", "northtel", "southwave")

# r = read, w = write, d = delete; "" = no right at all (the collection is invisible).
RIGHTS = {
    # collection           regulator  northtel  southwave
    "advisories":        ("rwd",     "r",      "r"),
    "community":         ("rwd",     "rw",     "rw"),
    "northtel-reports":  ("rwd",     "rwd",    ""),
    "southwave-reports": ("rwd",     "",       "rwd"),
}


def rights(operator: str, alias: str) -> str:
    return RIGHTS[alias][OPERATOR_IDS.index(operator)]


def kind(operator: str, alias: str) -> str:
    """The kind of collection this is from the operator's point of view, for test ids."""
    if not alias.endswith("-reports"):
        return alias
    if operator == "regulator":
        return "a licensee's reports"
    return "own reports" if alias == f"{operator}-reports" else "another licensee's reports"


# (name, method, path template, right needed). DELETE comes last: it removes the seeded object.
ENDPOINTS = [
    ("GET collection", "GET", "/collections/{c}/", "see"),
    ("GET manifest", "GET", "/collections/{c}/manifest/", "read"),
    ("GET objects", "GET", "/collections/{c}/objects/", "read"),
    ("POST objects", "POST", "/collections/{c}/objects/", "write"),
    ("GET object", "GET", "/collections/{c}/objects/{o}/", "read"),
    ("GET versions", "GET", "/collections/{c}/objects/{o}/versions/", "read"),
    ("DELETE object", "DELETE", "/collections/{c}/objects/{o}/", "delete"),
]


def expected_status(granted: str, needed: str) -> int:
    can_read, can_write, can_delete = "r" in granted, "w" in granted, "d" in granted
    if not (can_read or can_write):
        return 404                      # invisible: as if it did not exist
    if needed == "see":
        return 200
    if needed == "read":
        return 200 if can_read else 403
    if needed == "write":
        return 202 if can_write else 403
    # §5.7: only both can_read and can_write false is 404 (handled above); the
    # delete itself also needs the collection's delete right.
    return 200 if can_read and can_write and can_delete else 403


SEEDED = indicator(1)   # put in by the regulator before each sweep
POSTED = indicator(2)   # what the operator under test tries to add

MATRIX = [(operator, alias) for alias in RIGHTS for operator in OPERATOR_IDS]


def collection_id(settings, alias: str) -> str:
    return settings.collection(alias).id


def send(session, method: str, path: str):
    if method == "POST":
        return session.post(path, envelope(POSTED))
    return session.get(path) if method == "GET" else session.delete(path)


def is_taxii_error(response) -> bool:
    return (response.headers.get("Content-Type", "").startswith("application/taxii+json")
            and response.json().get("http_status") == str(response.status_code)
            and "title" in response.json())


def object_ids(session, collection: str) -> set[str]:
    page = session.get(f"/collections/{collection}/objects/")
    assert page.status_code == 200
    return {o["id"] for o in page.json().get("objects", [])}


@pytest.mark.parametrize("operator, alias", MATRIX,
                         ids=[f"{op}-on-{alias}({kind(op, alias)})" for op, alias in MATRIX])
def test_every_endpoint_answers_as_the_rights_table_says(as_operator, settings, operator, alias):
    """§5.2-§5.8: each endpoint, as each operator, on each kind of collection."""
    collection = collection_id(settings, alias)
    regulator, caller = as_operator("regulator"), as_operator(operator)
    seeded = regulator.post(f"/collections/{collection}/objects/", envelope(SEEDED))
    assert seeded.status_code == 202 and seeded.json()["success_count"] == 1

    granted = rights(operator, alias)
    expected = {name: expected_status(granted, needed) for name, _, _, needed in ENDPOINTS}
    actual, responses = {}, {}
    for name, method, template, _ in ENDPOINTS:
        response = send(caller, method, template.format(c=collection, o=SEEDED["id"]))
        actual[name], responses[name] = response.status_code, response
    assert actual == expected

    refusals_without_taxii_error = [name for name, r in responses.items()
                                    if r.status_code >= 400 and not is_taxii_error(r)]
    assert refusals_without_taxii_error == []

    # What the successful reads showed, and what the writes and deletes left behind.
    if "r" in granted:
        assert SEEDED["id"] in {o["id"] for o in responses["GET manifest"].json()["objects"]}
        assert SEEDED["id"] in {o["id"] for o in responses["GET objects"].json()["objects"]}
        assert [o["id"] for o in responses["GET object"].json()["objects"]] == [SEEDED["id"]]
        assert responses["GET versions"].json()["versions"] == [SEEDED["modified"]]
    stored = object_ids(regulator, collection)
    assert (POSTED["id"] in stored) == ("w" in granted)
    assert (SEEDED["id"] in stored) == (expected["DELETE object"] != 200)


@pytest.mark.parametrize("operator", OPERATOR_IDS)
def test_the_collections_list_shows_exactly_the_visible_collections_with_the_callers_rights(
        as_operator, settings, operator):
    """§5.1: /collections/ lists what the caller may read or write; can_read/can_write are its own rights."""
    listing = as_operator(operator).get("/collections/")
    assert listing.status_code == 200
    shown = {c["id"]: (c.get("alias"), c["can_read"], c["can_write"]) for c in listing.json()["collections"]}
    expected = {collection_id(settings, alias): (alias, "r" in rights(operator, alias), "w" in rights(operator, alias))
                for alias in RIGHTS if rights(operator, alias)}
    assert shown == expected


INVISIBLE = [("northtel", "southwave-reports"), ("southwave", "northtel-reports")]


@pytest.mark.parametrize("operator, alias", INVISIBLE, ids=[f"{op}-on-{alias}" for op, alias in INVISIBLE])
def test_another_licensees_reports_are_404_by_id_and_alias_exactly_like_a_collection_that_does_not_exist(
        as_operator, settings, store, operator, alias):
    """Appendix B: a 404 for a collection the caller may not see must not reveal that it exists."""
    collection = collection_id(settings, alias)
    as_operator("regulator").post(f"/collections/{collection}/objects/", envelope(SEEDED))
    caller = as_operator(operator)

    def answers(reference: str) -> dict:
        seen = {}
        for name, method, template, _ in ENDPOINTS:
            response = send(caller, method, template.format(c=reference, o=SEEDED["id"]))
            seen[name] = (response.status_code, response.headers.get("Content-Type"), response.json())
        return seen

    nonexistent = answers(str(uuid.uuid4()))
    assert {name: status for name, (status, _, _) in nonexistent.items()} == {name: 404 for name, *_ in ENDPOINTS}
    assert answers(collection) == nonexistent
    assert answers(alias) == nonexistent
    assert answers("eastlink-reports") == nonexistent  # an alias no licensee has
    assert store.count_versions(collection) == 1        # the POSTs stored nothing, the DELETEs removed nothing


def test_a_status_resource_is_visible_only_to_the_operator_who_created_it(as_operator):
    """§4.3: another operator, even the regulator, gets the same 404 as for an unknown status id."""
    northtel = as_operator("northtel")
    created = northtel.post(f"/collections/{COMMUNITY}/objects/", envelope(indicator(3)))
    assert created.status_code == 202
    status_id = created.json()["id"]

    own = northtel.get(f"/status/{status_id}/")
    assert own.status_code == 200
    assert own.json() == created.json()

    unknown = northtel.get(f"/status/{uuid.uuid4()}/")
    assert unknown.status_code == 404
    for other in ("southwave", "regulator"):
        response = as_operator(other).get(f"/status/{status_id}/")
        assert (response.status_code, response.json()) == (404, unknown.json()), other


def test_a_directed_alert_reaches_only_the_licensee_it_was_sent_to(as_operator, settings):
    """The regulator writes into northtel-reports: northtel reads it, southwave cannot even see it."""
    alert = indicator(4, name="directed alert for northtel")
    reports = collection_id(settings, "northtel-reports")
    sent = as_operator("regulator").post(f"/collections/{reports}/objects/", envelope(alert))
    assert sent.status_code == 202 and sent.json()["success_count"] == 1

    northtel = as_operator("northtel")
    assert object_ids(northtel, reports) == {alert["id"]}
    got = northtel.get(f"/collections/{reports}/objects/{alert['id']}/")
    assert got.status_code == 200
    assert got.json()["objects"] == [alert]

    southwave = as_operator("southwave")
    assert southwave.get(f"/collections/{reports}/objects/{alert['id']}/").status_code == 404
    assert southwave.get(f"/collections/{reports}/objects/").status_code == 404
    assert reports not in {c["id"] for c in southwave.get("/collections/").json()["collections"]}
    assert alert["id"] not in object_ids(southwave, COMMUNITY) | object_ids(southwave, ADVISORIES)


@pytest.mark.parametrize("licensee", ["northtel", "southwave"])
@pytest.mark.parametrize("reference", [ADVISORIES, "advisories"], ids=["by-id", "by-alias"])
def test_a_licensee_cannot_publish_advisories_and_nothing_is_stored(as_operator, store, licensee, reference):
    """§5.5: visible but can_write false -> 403, and the request leaves no trace."""
    response = as_operator(licensee).post(f"/collections/{reference}/objects/", envelope(indicator(5)))
    assert response.status_code == 403
    assert is_taxii_error(response)
    assert store.count_versions(ADVISORIES) == 0
    assert as_operator("regulator").get(f"/collections/{ADVISORIES}/objects/").json() == {"more": False}


def test_a_licensee_cannot_delete_in_community_even_what_it_posted_itself(as_operator):
    """§5.7: read and write but no delete right -> 403; only the regulator deletes in community."""
    northtel, regulator = as_operator("northtel"), as_operator("regulator")
    own = indicator(6)
    assert northtel.post(f"/collections/{COMMUNITY}/objects/", envelope(own)).status_code == 202

    refused = northtel.delete(f"/collections/{COMMUNITY}/objects/{own['id']}/")
    assert refused.status_code == 403
    assert is_taxii_error(refused)
    assert object_ids(northtel, COMMUNITY) == {own["id"]}

    deleted = regulator.delete(f"/collections/{COMMUNITY}/objects/{own['id']}/")
    assert deleted.status_code == 200
    assert deleted.content == b""
    assert northtel.get(f"/collections/{COMMUNITY}/objects/{own['id']}/").status_code == 404


DELETE_UNKNOWN = [("northtel", "community", 403), ("northtel", "advisories", 403),
                  ("northtel", "southwave-reports", 404), ("northtel", "northtel-reports", 404),
                  ("regulator", "community", 404)]


@pytest.mark.parametrize("operator, alias, status", DELETE_UNKNOWN,
                         ids=[f"{op}-on-{alias}" for op, alias, _ in DELETE_UNKNOWN])
def test_deleting_an_unknown_object_checks_rights_before_existence(as_operator, settings, operator, alias, status):
    """§5.7: without the delete right the answer is 403 (or 404 when invisible) whether or not the
    object exists, so rights cannot be used to probe contents; with it, nothing to delete is 404."""
    missing = indicator(99)["id"]
    response = as_operator(operator).delete(f"/collections/{collection_id(settings, alias)}/objects/{missing}/")
    assert response.status_code == status
    assert is_taxii_error(response)
