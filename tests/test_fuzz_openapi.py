"""Bad input, generated: schemathesis against the running server.

schemathesis reads the OpenAPI description the server publishes
(GET /taxii2/openapi.yaml) and sends requests generated from it, both
conforming and deliberately malformed, to a real server on loopback. The bar
(hardening issue, "Bad input, generated"): no response is a 5xx, every
response is one the description documents, and every error is a TAXII error
resource (§3.6.1) whose `http_status` equals the status code, sent as
application/taxii+json;version=2.1.

Generated path parameters are steered towards real collections, objects and
statuses some of the time, so the GET paths reach data and not only 404s.
"""

from __future__ import annotations


import pytest
import requests
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from conftest import ADVISORIES, COMMUNITY, REPO, TAXII, LiveServer, envelope, indicator, write_config
from taxii_server.app import SELF_AUTHENTICATED_BLUEPRINTS, create_app
from taxii_server.config import load_settings
from taxii_server.query import ENDPOINT_FILTERS
from taxii_server.storage import open_store

SPEC_PATH = REPO / "schemas" / "openapi.yaml"
SPEC_URL = "/taxii2/openapi.yaml"
# Served without credentials: the description and the health probes. /metrics takes a scrape
# token of its own, and these deployments configure none (404).
PUBLIC_PATHS = (SPEC_URL, "/healthz", "/readyz")
METRICS_PATH = "/metrics"
# Requests per operation, bounded so that the whole file runs in about a minute. Derandomized:
# CI sends the same requests every run; a failure shows the request to reproduce it.
FUZZ_SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                         suppress_health_check=list(HealthCheck))
# Without credentials every answer is the same 401: fewer requests prove it.
UNAUTHENTICATED_SETTINGS = settings(FUZZ_SETTINGS, max_examples=15)
OPERATIONS = [f"{method.upper()} {path}" for path, item in yaml.safe_load(SPEC_PATH.read_bytes())["paths"].items()
              for method in item if method != "parameters"]
CHECKS = ["not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_headers_conformance", "response_schema_conformance"]


# --- the description itself -------------------------------------------------------------------------------------


def test_the_api_description_is_served_without_credentials_as_the_published_file(server):
    """The description is public: it names no operator, collection or object."""
    response = requests.get(server.url + SPEC_URL, headers={"Accept": "application/json"})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/yaml"
    assert response.content == SPEC_PATH.read_bytes()


def test_only_the_api_description_is_served_without_credentials(server):
    for path in ("/taxii2/", "/api/", "/api/collections/", f"/api/collections/{ADVISORIES}/objects/"):
        response = requests.get(server.url + path, headers={"Accept": TAXII})
        assert response.status_code == 401, path


def test_the_served_description_names_the_deployments_api_root(tmp_path):
    settings_ = load_settings(write_config(tmp_path, api_root={"path": "cert", "title": "Root"}), environ={})
    store = open_store(settings_.storage_url)
    live = LiveServer(create_app(settings_, store))
    try:
        served = yaml.safe_load(requests.get(live.url + SPEC_URL).content)
    finally:
        live.stop()
        store.close()
    published = yaml.safe_load(SPEC_PATH.read_bytes())
    expected = [path.replace("/api/", "/cert/", 1) for path in published["paths"]]
    assert list(served["paths"]) == expected
    assert served["components"] == published["components"]


def test_the_description_has_every_route_the_server_serves(app):
    published = yaml.safe_load(SPEC_PATH.read_bytes())["paths"]
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.partition(".")[0] in SELF_AUTHENTICATED_BLUEPRINTS:
            continue  # pages for people (the portal), not the API the description is of
        path = rule.rule.replace("<", "{").replace(">", "}")
        routes |= {(path, method.lower()) for method in rule.methods - {"HEAD", "OPTIONS"}}
    described = {(path, method) for path, item in published.items() for method in item if method != "parameters"}
    assert routes == described


@pytest.mark.parametrize(("path", "method", "endpoint"), [
    ("/api/collections/{collection_id}/objects/", "get", "objects"),
    ("/api/collections/{collection_id}/manifest/", "get", "manifest"),
    ("/api/collections/{collection_id}/objects/{object_id}/", "get", "object"),
    ("/api/collections/{collection_id}/objects/{object_id}/", "delete", "delete"),
    ("/api/collections/{collection_id}/objects/{object_id}/versions/", "get", "versions"),
])
def test_the_description_lists_exactly_the_filters_each_endpoint_takes(path, method, endpoint):
    document = yaml.safe_load(SPEC_PATH.read_bytes())
    parameters = document["components"]["parameters"]
    declared = [parameters[ref["$ref"].rsplit("/", 1)[1]] for ref in document["paths"][path][method]["parameters"]]
    assert sorted(p["name"] for p in declared if p["in"] == "query") == sorted(ENDPOINT_FILTERS[endpoint])


# --- inputs that generated requests and properties found (each once answered with a 500 or bad text) ------------


def test_a_next_token_with_non_ascii_characters_is_refused_with_400(northtel):
    response = northtel.get(f"/collections/{ADVISORIES}/objects/", params={"next": "\u00e9.\u00e9"})
    assert response.status_code == 400
    assert_taxii_error_resource(response)


def test_a_limit_of_thousands_of_digits_is_clamped_to_the_maximum_page_size(northtel):
    response = northtel.get(f"/collections/{ADVISORIES}/objects/", params={"limit": "9" * 5000})
    assert response.status_code == 200


def test_basic_credentials_that_are_not_ascii_are_refused_with_401(server):
    response = requests.get(server.url + "/taxii2/", headers={"Accept": TAXII, "Authorization": "Basic \u00e9t\u00e9"})
    assert response.status_code == 401
    assert_taxii_error_resource(response)


def test_an_added_after_before_the_year_1000_is_echoed_with_four_digit_years(northtel):
    """An empty page repeats added_after in X-TAXII-Date-Added-First/-Last, as an RFC 3339 timestamp
    (given to the second, it means after the end of that millisecond: .000999)."""
    response = northtel.get(f"/collections/{ADVISORIES}/objects/",
                            params={"added_after": "0999-12-31T23:59:59Z", "match[type]": "malware"})
    assert response.status_code == 200
    assert response.headers["X-TAXII-Date-Added-First"] == "0999-12-31T23:59:59.000999Z"
    assert response.headers["X-TAXII-Date-Added-Last"] == "0999-12-31T23:59:59.000999Z"


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+00:01", "9999-12-31T23:59:59-00:01",
                                   "2026-01-01T00:00:00+24:00", "2026-01-01T00:00:00Z\n"])
def test_an_added_after_that_is_not_an_rfc3339_timestamp_of_years_0001_to_9999_is_refused_with_400(northtel, value):
    response = northtel.get(f"/collections/{ADVISORIES}/objects/", params={"added_after": value})
    assert response.status_code == 400
    assert_taxii_error_resource(response)


def test_a_match_id_with_a_trailing_newline_is_refused_with_400(northtel):
    response = northtel.get(f"/collections/{ADVISORIES}/objects/", params={"match[id]": indicator(0)["id"] + "\n"})
    assert response.status_code == 400
    assert_taxii_error_resource(response)


# --- generated requests ------------------------------------------------------------------------------------------


@pytest.fixture
def seeded(regulator, northtel, southwave, settings) -> dict:
    """Objects in every kind of collection (several versions of one), and a status of each operator.

    Returns real path parameters, by the names the description gives them, for
    generated requests to aim at: a collection northtel reads, one it writes,
    its own and another licensee's (invisible to it); objects in each; its own
    status and another operator's.
    """
    statuses = {}
    for session, collection, start in ((regulator, ADVISORIES, 0), (northtel, COMMUNITY, 10),
                                       (northtel, "northtel-reports", 20), (southwave, "southwave-reports", 30)):
        objects = [indicator(start + n) for n in range(3)]
        objects.append(indicator(start, modified="2026-02-01T00:00:00.000Z"))
        response = session.post(f"/collections/{collection}/objects/", envelope(*objects))
        assert response.status_code == 202 and response.json()["success_count"] == 4
        statuses.setdefault(session, response.json()["id"])
    collections = [ADVISORIES, COMMUNITY, "northtel-reports", settings.collection("southwave-reports").id]
    return {
        ("collection_id",): [{"collection_id": collection} for collection in collections],
        ("collection_id", "object_id"): [{"collection_id": collection, "object_id": indicator(n)["id"]}
                                         for collection, n in zip(collections, (0, 10, 20, 30))]
                                        + [{"collection_id": "advisories", "object_id": indicator(0)["id"]}],
        ("status_id",): [{"status_id": status} for status in statuses.values()],
    }


@pytest.fixture
def api_schema(server):
    """The description as the running server publishes it, aimed at that server."""
    schema = schemathesis.openapi.from_url(server.url + SPEC_URL)
    schema.config.update(base_url=server.url)
    schema.config.checks.update(included_check_names=CHECKS)
    return schema


def generated_cases(schema, label: str, seeded: dict):
    """Requests for one operation: conforming to the description and deliberately not, with
    generated path parameters or aimed at stored data (so that GETs do not all end in 404)."""
    method, path = label.split(" ", 1)
    operation = schema[path][method]
    names = tuple(name for name in ("collection_id", "object_id", "status_id") if f"{{{name}}}" in path)
    targets = [None, *seeded.get(names, [])]
    return st.one_of([operation.as_strategy(mode, path_parameters=target)
                      for target in targets for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)])


def header(response, name: str) -> str | None:
    """A header of a requests response, or of a schemathesis one (names lower-cased, values listed)."""
    if isinstance(response, requests.Response):
        return response.headers.get(name)
    values = response.headers.get(name.lower())
    return values[0] if values else None


def assert_taxii_error_resource(response) -> None:
    """§3.6.1: the error resource, in the TAXII media type, with http_status = the status code."""
    assert header(response, "Content-Type") == TAXII, response.headers
    body = response.json()
    assert isinstance(body.get("title"), str) and body["title"]
    assert body.get("http_status") == str(response.status_code), body


@pytest.mark.parametrize("label", OPERATIONS)
def test_generated_requests_from_an_operator_never_cause_a_server_error(api_schema, seeded, keys, label):
    """A licensee's Bearer key: it sees some collections, may write some, delete in one."""
    credentials = {"Authorization": f"Bearer {keys['northtel']}"}

    @FUZZ_SETTINGS
    @given(case=generated_cases(api_schema, label, seeded))
    def check(case):
        response = case.call(headers=credentials)
        case.validate_response(response, headers=credentials)
        if response.status_code >= 400:
            assert_taxii_error_resource(response)

    check()


@pytest.mark.parametrize("label", OPERATIONS)
def test_generated_requests_without_credentials_are_refused_with_401(api_schema, seeded, label):
    @UNAUTHENTICATED_SETTINGS
    @given(case=generated_cases(api_schema, label, seeded))
    def check(case):
        response = case.call()
        case.validate_response(response)
        if case.path in PUBLIC_PATHS:
            assert response.status_code == 200
        elif case.path == METRICS_PATH:
            assert response.status_code == 404
            assert_taxii_error_resource(response)
        else:
            assert response.status_code == 401
            assert header(response, "WWW-Authenticate")
            assert_taxii_error_resource(response)

    check()
