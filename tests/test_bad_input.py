"""Bad input, over real HTTP: every refusal is a TAXII error resource whose
`http_status` equals the HTTP status (TAXII 2.1 §3.6.1), a refused request
stores nothing, invalid STIX objects are reported one by one while the valid
ones beside them are stored (§5.5), and no input at all produces a 500
(architecture, correctness rule 5)."""

from __future__ import annotations

import http.client
import json
import re
import uuid
from urllib.parse import quote, urlsplit

import pytest

from conftest import COMMUNITY, TAXII, envelope, indicator

# The HTTP contract: every case runs once per storage backend.
pytestmark = pytest.mark.every_backend

OBJECTS = f"/collections/{COMMUNITY}/objects/"
MANIFEST = f"/collections/{COMMUNITY}/manifest/"
ONE_OBJECT = f"{OBJECTS}{indicator(1)['id']}/"
MAX_CONTENT_LENGTH = 65536  # api_root.max_content_length in the test configuration
ENDPOINTS = pytest.mark.parametrize("endpoint", [OBJECTS, MANIFEST], ids=["objects", "manifest"])


def assert_taxii_error(response, status: int) -> dict:
    """The response is the TAXII error resource for `status`."""
    assert response.status_code == status, response.text[:500]
    assert response.headers["Content-Type"] == TAXII
    error = response.json()
    assert error["http_status"] == str(status)
    assert isinstance(error["title"], str) and error["title"]
    return error


def assert_not_a_server_error(response) -> None:
    assert response.status_code < 500, response.text[:500]
    if response.status_code >= 400:
        assert_taxii_error(response, response.status_code)


def stored_state(reader) -> list[tuple[str, str, str]]:
    """Every version in the community collection: (id, version, date_added)."""
    page = reader.get(MANIFEST, params={"match[version]": "all", "limit": "200"})
    assert page.status_code == 200 and page.json()["more"] is False
    return [(m["id"], m["version"], m["date_added"]) for m in page.json().get("objects", [])]


@pytest.fixture
def before(northtel, regulator):
    """The community collection holds two versions of one object and one other
    object; returns its state, to compare with once a bad request is refused."""
    published = northtel.post(OBJECTS, envelope(
        indicator(1), indicator(1, modified="2026-02-01T00:00:00.000Z"), indicator(2)))
    assert published.json()["success_count"] == 3
    state = stored_state(regulator)
    assert len(state) == 3
    return state


def valid_envelope_text(n: int = 50) -> str:
    return json.dumps(envelope(indicator(n)))


def without(obj: dict, name: str) -> dict:
    return {key: value for key, value in obj.items() if key != name}


def cases(table: dict):
    """pytest.param per row of a {name: value} table, the name as its id."""
    return [pytest.param(value, id=name) for name, value in table.items()]


# -- 422: the body is not an envelope of STIX objects ---------------------------------------------------------

NOT_AN_ENVELOPE = {
    "malformed JSON": '{"objects": [',
    "empty body": "",
    "JSON array": json.dumps([indicator(50)]),
    "JSON string": json.dumps("objects"),
    "JSON number": "42",
    "JSON null": "null",
    "envelope without objects": json.dumps({"more": False}),
    "objects is not a list": json.dumps({"objects": indicator(50)}),
    "empty objects list": json.dumps({"objects": []}),
    # A valid first entry shows that the request is refused as a whole.
    "entry is a number": json.dumps({"objects": [indicator(50), 7]}),
    "entry is a string": json.dumps({"objects": [indicator(50), "indicator--x"]}),
    "entry is null": json.dumps({"objects": [indicator(50), None]}),
    "entry is a list": json.dumps({"objects": [indicator(50), [indicator(51)]]}),
    "entry lacks id": json.dumps({"objects": [indicator(50), without(indicator(51), "id")]}),
    "entry lacks type": json.dumps({"objects": [indicator(50), without(indicator(51), "type")]}),
    "entry id is not a string": json.dumps({"objects": [indicator(50), {**indicator(51), "id": 51}]}),
}


@pytest.mark.parametrize("body", cases(NOT_AN_ENVELOPE))
def test_a_body_that_is_not_an_envelope_of_stix_objects_is_refused_with_422_and_nothing_is_stored(
        northtel, regulator, before, body):
    assert_taxii_error(northtel.post(OBJECTS, body), 422)
    assert stored_state(regulator) == before


# -- 406 and 415: media types ---------------------------------------------------------------------------------

UNACCEPTABLE = ["application/json", "text/html", "application/taxii+json;version=2.0",
                "application/stix+json;version=2.1", "text/*", "application/taxii+json;version=2.1;q=0"]


@pytest.mark.parametrize("accept", UNACCEPTABLE)
def test_an_accept_header_without_taxii_2_1_is_refused_with_406(northtel, accept):
    """§1.6.8 / §3.1: the server answers only with application/taxii+json;version=2.1."""
    assert_taxii_error(northtel.get(OBJECTS, headers={"Accept": accept}), 406)


@pytest.mark.parametrize("accept", UNACCEPTABLE)
def test_a_post_with_an_unacceptable_accept_header_is_refused_with_406_and_stores_nothing(
        northtel, regulator, before, accept):
    assert_taxii_error(northtel.post(OBJECTS, valid_envelope_text(), headers={"Accept": accept}), 406)
    assert stored_state(regulator) == before


@pytest.mark.parametrize("accept", ["application/taxii+json;version=2.1", "application/taxii+json", "*/*",
                                    "application/*", "text/html, application/taxii+json;version=2.1;q=0.5"])
def test_an_accept_header_admitting_taxii_2_1_is_served(northtel, accept):
    assert northtel.get(OBJECTS, headers={"Accept": accept}).status_code == 200


UNSUPPORTED_CONTENT_TYPES = {
    "application/json": "application/json",
    "text/plain": "text/plain",
    "missing": None,  # requests sends no header whose value is None
    "taxii 2.0": "application/taxii+json;version=2.0",
    "stix 2.0": "application/stix+json;version=2.0",
    "form": "multipart/form-data; boundary=x",
}


@pytest.mark.parametrize("content_type", cases(UNSUPPORTED_CONTENT_TYPES))
def test_a_post_without_a_taxii_2_1_content_type_is_refused_with_415_and_stores_nothing(
        northtel, regulator, before, content_type):
    """§5.5: the request body is application/taxii+json;version=2.1."""
    response = northtel.post(OBJECTS, valid_envelope_text(), headers={"Content-Type": content_type})
    if content_type is None:
        assert "Content-Type" not in response.request.headers
    assert_taxii_error(response, 415)
    assert stored_state(regulator) == before


@pytest.mark.parametrize("content_type", ["application/taxii+json", "application/stix+json;version=2.1"])
def test_a_post_with_another_accepted_content_type_is_stored(northtel, regulator, before, content_type):
    response = northtel.post(OBJECTS, valid_envelope_text(), headers={"Content-Type": content_type})
    assert response.status_code == 202 and response.json()["success_count"] == 1
    assert len(stored_state(regulator)) == len(before) + 1


# -- 413: bodies over max_content_length ----------------------------------------------------------------------

def oversized_envelope() -> bytes:
    """A valid envelope just over the limit: if it were read, it would be stored."""
    body = json.dumps(envelope(indicator(60, description="x" * MAX_CONTENT_LENGTH))).encode()
    assert MAX_CONTENT_LENGTH < len(body) < MAX_CONTENT_LENGTH + 1024
    return body


def test_a_body_over_max_content_length_is_refused_with_413(northtel, regulator, before):
    """§3.6.1 / api-root max_content_length: declared by Content-Length."""
    response = northtel.post(OBJECTS, oversized_envelope())
    assert_taxii_error(response, 413)
    assert stored_state(regulator) == before


def test_a_chunked_body_over_max_content_length_is_refused_with_413(northtel, regulator, before):
    """Without Content-Length (Transfer-Encoding: chunked) the limit is enforced while reading."""
    body = oversized_envelope()
    chunks = (body[i:i + 4096] for i in range(0, len(body), 4096))
    response = northtel.http.post(northtel.api + OBJECTS, data=chunks, headers={"Content-Type": TAXII})
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in response.request.headers
    assert_taxii_error(response, 413)
    assert stored_state(regulator) == before


def test_a_chunked_body_within_max_content_length_is_accepted(server, keys, regulator, before):
    """The chunked path reads the whole body when it fits (here through http.client)."""
    body = json.dumps(envelope(indicator(61, description="y" * (MAX_CONTENT_LENGTH - 2048)))).encode()
    assert len(body) <= MAX_CONTENT_LENGTH
    connection = http.client.HTTPConnection(urlsplit(server.url).netloc)
    try:
        connection.request("POST", "/api" + OBJECTS, body=iter([body[:1000], body[1000:]]), encode_chunked=True,
                           headers={"Authorization": f"Bearer {keys['northtel']}", "Accept": TAXII,
                                    "Content-Type": TAXII, "Transfer-Encoding": "chunked"})
        response = connection.getresponse()
        status = json.loads(response.read())
    finally:
        connection.close()
    assert response.status == 202
    assert status["success_count"] == 1
    assert len(stored_state(regulator)) == len(before) + 1


# -- invalid STIX objects among valid ones --------------------------------------------------------------------

OTHER_UUID = str(uuid.UUID(int=999, version=4))


def custom_object(**changes) -> dict:
    obj = {"type": "x-acme-sighting-note", "spec_version": "2.1", "id": f"x-acme-sighting-note--{OTHER_UUID}",
           "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z", "note": "seen"}
    return {**obj, **changes}


# name -> (object, a pattern the failure message must match: it names the problem)
INVALID_STIX = {
    "bad pattern": (indicator(70, pattern="[ipv4-addr:value = "), r"\bpattern\b"),
    "missing required property": (without(indicator(71), "pattern_type"), r"\bpattern_type\b"),
    "ill-typed property": (indicator(72, confidence="very high"), r"\bconfidence\b"),
    "bad timestamp": (indicator(73, created="yesterday"), r"\bcreated\b"),
    "impossible date": (indicator(74, modified="2026-02-30T00:00:00.000Z"), r"\bmodified\b"),
    "id with the wrong type prefix": ({**indicator(75), "id": f"malware--{OTHER_UUID}"}, r"\bid\b"),
    "id without a uuid": ({**indicator(76), "id": "indicator--not-a-uuid"}, r"\bid\b"),
    "modified before created": (indicator(77, modified="2025-12-31T23:59:59.000Z"), r"modified.*created"),
    "spec_version 2.0": (indicator(78, spec_version="2.0"), r"spec_version.*2\.0"),
    "sdo without spec_version": (without(indicator(79), "spec_version"), r"\bspec_version\b"),
    "custom type with an id of another type": (custom_object(id=f"x-other-thing--{OTHER_UUID}"), r"\bid\b"),
    "custom type with an id without a uuid": (custom_object(id="x-acme-sighting-note--1234"), r"\bid\b"),
    "custom type with an invalid type name": (custom_object(type="X_Acme", id=f"X_Acme--{OTHER_UUID}"), r"\btype\b"),
}


def claimed_version(obj: dict) -> str:
    return obj.get("modified") or obj.get("created") or "unknown"


@pytest.mark.parametrize("invalid, message", INVALID_STIX.values(), ids=INVALID_STIX.keys())
def test_an_invalid_stix_object_is_reported_as_a_failure_and_the_valid_ones_beside_it_are_stored(
        northtel, regulator, before, invalid, message):
    """§5.5 / architecture rule 4: each object is validated as STIX 2.1 on its own."""
    first, last = indicator(80), indicator(81)
    response = northtel.post(OBJECTS, envelope(first, invalid, last))
    assert response.status_code == 202, response.text
    status = response.json()
    assert (status["status"], status["total_count"], status["success_count"], status["failure_count"]) == \
        ("complete", 3, 2, 1)
    assert [s["id"] for s in status["successes"]] == [first["id"], last["id"]]
    [failure] = status["failures"]
    assert failure["id"] == invalid["id"]
    assert failure["version"] == claimed_version(invalid)
    assert re.search(message, failure["message"]), failure["message"]

    after = stored_state(regulator)
    assert after[:len(before)] == before
    assert [entry[0] for entry in after[len(before):]] == [first["id"], last["id"]]


def test_every_invalid_object_of_one_envelope_is_reported_in_order_with_the_valid_ones_stored(
        northtel, regulator, before):
    invalid = [obj for obj, _ in INVALID_STIX.values()]
    valid = [indicator(90 + n) for n in range(len(invalid))]
    mixed = [item for pair in zip(valid, invalid) for item in pair]
    status = northtel.post(OBJECTS, envelope(*mixed)).json()
    assert (status["success_count"], status["failure_count"]) == (len(valid), len(invalid))
    assert [f["id"] for f in status["failures"]] == [obj["id"] for obj in invalid]
    assert all(f["message"] for f in status["failures"])
    assert [entry[0] for entry in stored_state(regulator)[len(before):]] == [obj["id"] for obj in valid]


def test_a_property_of_the_wrong_json_type_is_a_failure_even_when_stix2_could_coerce_it(northtel):
    """stix2 would turn 42 into "42" and "x" into ["x"]; the server stores objects as sent, so it refuses them."""
    ill_typed = [indicator(95, name=42), indicator(96, labels="malicious-activity"), indicator(97, confidence=True),
                 indicator(98, kill_chain_phases=[{"kill_chain_name": "lockheed", "phase_name": 7}]),
                 indicator(99, external_references=["https://example.org"])]
    status = northtel.post(OBJECTS, envelope(*ill_typed, indicator(100, labels=["fine"], confidence=80)))
    body = status.json()
    assert body["failure_count"] == 5 and body["success_count"] == 1
    messages = {failure["id"]: failure["message"] for failure in body["failures"]}
    assert messages[indicator(95)["id"]] == "name must be a string, not an integer."
    assert messages[indicator(96)["id"]] == "labels must be a list, not a string."
    assert messages[indicator(97)["id"]] == "confidence must be an integer, not a boolean."
    assert messages[indicator(98)["id"]] == "kill_chain_phases[0].phase_name must be a string, not an integer."
    assert messages[indicator(99)["id"]] == "external_references[0] must be an object, not a string."


# -- 400: filters ---------------------------------------------------------------------------------------------

BAD_FILTERS = [
    ("limit", "0"), ("limit", "-1"), ("limit", "ten"), ("limit", "1.5"), ("limit", ""), ("limit", "1e3"),
    ("limit", " 5"), ("limit", "²"), ("limit", "١٢"),
    ("added_after", "yesterday"), ("added_after", "2026-01-01"), ("added_after", "2026-01-01T00:00:00"),
    ("added_after", "2026-13-01T00:00:00Z"), ("added_after", "2026-02-30T00:00:00Z"), ("added_after", ""),
    ("added_after", "0000-01-01T00:00:00Z"), ("added_after", "2026-01-01T00:00:00+2400"),
    ("match[version]", "newest"), ("match[version]", "all,last"), ("match[version]", "last,last"),
    ("match[version]", ""), ("match[version]", "2026-01-01"), ("match[version]", "first,"),
    ("match[id]", "not-an-id"), ("match[id]", "indicator--1234"), ("match[id]", ""),
    ("match[id]", f"{indicator(1)['id']},"), ("match[id]", "Indicator--00000000-0000-4000-8000-000000000001"),
    ("match[type]", "Indicator"), ("match[type]", "ab"), ("match[type]", "bad type"), ("match[type]", ""),
    ("match[type]", "indicator,"), ("match[type]", "-indicator"),
    ("match[spec_version]", "two"), ("match[spec_version]", "2"), ("match[spec_version]", ""),
    ("next", "garbage"), ("next", "abc.def"), ("next", ""),
]


@pytest.mark.parametrize("name, value", [pytest.param(n, v, id=f"{n}={v!r}") for n, v in BAD_FILTERS])
def test_a_malformed_filter_value_is_refused_with_400_naming_the_filter(northtel, before, name, value):
    """§3.4: anything malformed is a 400, before storage is read."""
    error = assert_taxii_error(northtel.get(OBJECTS, params={name: value}), 400)
    assert name == "next" or name in error["description"]


@pytest.mark.parametrize("name, value", [("limit", "0"), ("added_after", "yesterday"), ("match[version]", "newest"),
                                         ("match[id]", "x"), ("match[type]", "X"), ("match[spec_version]", "2"),
                                         ("next", "garbage")])
def test_the_manifest_refuses_malformed_filter_values_alike(northtel, name, value):
    assert_taxii_error(northtel.get(MANIFEST, params={name: value}), 400)


@pytest.mark.parametrize("path, params", [
    pytest.param(OBJECTS, [("limit", "1"), ("limit", "2")], id="limit twice"),
    pytest.param(MANIFEST, [("match[type]", "indicator"), ("match[type]", "malware")], id="match[type] twice"),
    pytest.param(ONE_OBJECT, [("match[type]", "indicator")], id="match[type] on one object"),
    pytest.param(ONE_OBJECT, [("match[id]", indicator(1)["id"])], id="match[id] on one object"),
    pytest.param(ONE_OBJECT + "versions/", [("match[version]", "all")], id="match[version] on versions"),
])
def test_a_repeated_filter_or_one_the_endpoint_does_not_take_is_refused_with_400(northtel, before, path, params):
    """§5.6 / §5.8: GET object and versions take fewer filters; each filter appears at most once."""
    assert_taxii_error(northtel.get(path, params=params), 400)


# -- never a 500 ----------------------------------------------------------------------------------------------

def test_unicode_and_nul_characters_in_an_object_round_trip_unchanged(northtel, before):
    """JSON strings may hold any character, U+0000 included: stored and returned as sent."""
    obj = indicator(100, name="Ωμέγα 🚀 ünïcödé 中文 \u202e", description="before\u0000after \\ \" \n")
    status = northtel.post(OBJECTS, envelope(obj))
    assert status.status_code == 202 and status.json()["success_count"] == 1
    assert northtel.get(f"{OBJECTS}{obj['id']}/").json()["objects"] == [obj]


def nested_property_body(depth: int) -> bytes:
    """An envelope whose one indicator has a custom property nested `depth` lists deep."""
    obj = json.dumps(indicator(1000 + depth, x_deep="@"))
    return ('{"objects":[' + obj.replace('"@"', "[" * depth + '"bottom"' + "]" * depth) + "]}").encode()


@pytest.mark.parametrize("depth", [10, 250, 260, 600, 1020])
def test_a_deeply_nested_custom_property_is_stored_or_reported_as_a_failure(northtel, depth):
    """Depths either side of what the JSON library writes (254 levels) and reads (1024)."""
    response = northtel.post(OBJECTS, nested_property_body(depth))
    assert response.status_code == 202, response.text
    status = response.json()
    if status["success_count"] == 1:
        stored = northtel.get(f"{OBJECTS}{indicator(1000 + depth)['id']}/")
        assert stored.status_code == 200 and stored.json()["objects"][0]["x_deep"]
    else:
        assert "nested" in status["failures"][0]["message"], status


NASTY_BODIES = {
    "nesting past the JSON parser's depth limit": b'{"objects":' + b"[" * 5000 + b"]" * 5000 + b"}",
    "an object nested past the depth limit": b'{"objects":[' + b'{"a":' * 3000 + b"1" + b"}" * 3000 + b"]}",
    "a property nested past the depth limit": nested_property_body(1100),
    "raw NUL byte": b'{"objects": [\x00]}',
    "invalid UTF-8 in a string": b'{"objects":[{"type":"indicator","id":"indicator--\xff\xfe"}]}',
    "UTF-16 encoded JSON": json.dumps(envelope(indicator(102))).encode("utf-16"),
    "UTF-8 byte order mark": b"\xef\xbb\xbf" + json.dumps(envelope(indicator(103))).encode(),
    "lone surrogate escape": json.dumps(envelope(indicator(104, name="@"))).replace('"@"', '"\\ud800"').encode(),
    "NaN": b'{"objects":[{"type":"indicator","id":"indicator--x","confidence":NaN}]}',
    "huge number": b'{"objects":[{"type":"indicator","id":"indicator--x","confidence":1' + b"0" * 5000 + b"}]}",
    "duplicate keys": b'{"objects":[{"type":"indicator","id":"a","id":"b"}], "objects":[]}',
    "non-string type": json.dumps({"objects": [{**indicator(105), "type": ["indicator"]}]}).encode(),
    "custom type with an empty id suffix": json.dumps({"objects": [custom_object(id="x-acme-sighting-note--")]}).encode(),
    "id without a type part": json.dumps({"objects": [{**indicator(106), "id": "--"}]}).encode(),
    "object with thousands of properties": json.dumps(
        {"objects": [{**indicator(107), **{f"x_p{i}": i for i in range(3000)}}]}).encode(),
    "a thousand unknown objects": json.dumps({"objects": [{"type": "x", "id": str(n)} for n in range(1000)]}).encode(),
}


@pytest.mark.parametrize("body", cases(NASTY_BODIES))
def test_a_strange_body_never_causes_a_server_error(northtel, body):
    assert_not_a_server_error(northtel.post(OBJECTS, body))


MANY_IDS = ",".join(f"indicator--{uuid.UUID(int=n, version=4)}" for n in range(1000))

STRANGE_QUERIES = {
    "unicode type": {"match[type]": "индикатор"},
    "unicode id": {"match[id]": "indicator--ü"},
    "emoji added_after": {"added_after": "🚀"},
    "full-width digits in added_after": {"added_after": "２０２６-01-01T00:00:00Z"},
    "NUL in match[id]": {"match[id]": "\x00"},
    "NUL in added_after": {"added_after": "2026-01-01T00:00:00Z\x00"},
    "NUL in next": {"next": "\x00.\x00"},
    "NUL in limit": {"limit": "\x00"},
    "NUL in a parameter name": {"match[\x00]": "x"},
    "huge limit": {"limit": str(10 ** 30)},
    "huge limit with every version": {"limit": str(10 ** 30), "match[version]": "all"},
    "a thousand ids": {"match[id]": MANY_IDS},
    "a thousand ids and every version": {"match[id]": MANY_IDS, "match[version]": "all"},
    "latest possible added_after": {"added_after": "9999-12-31T23:59:59.999999-23:59"},
    "earliest possible added_after": {"added_after": "0001-01-01T00:00:00+23:59"},
    "very long fraction": {"added_after": "2026-01-01T00:00:00." + "9" * 5000 + "Z"},
    "unknown match field": {"match[colour]": "red"},
    "next with a forged huge position": {"next": "eyJwIjoxZTMwMCwiZiI6IngifQ.AAAA"},
    "trailing newline in an id": {"match[id]": indicator(1)["id"] + "\n"},
}


@ENDPOINTS
@pytest.mark.parametrize("params", cases(STRANGE_QUERIES))
def test_a_strange_query_never_causes_a_server_error(northtel, before, endpoint, params):
    assert_not_a_server_error(northtel.get(endpoint, params=params))


@pytest.mark.parametrize("raw_query", ["match[type]=%FF%FE", "match[type]=%ZZ", "limit=%", "=&&=", "match[id]",
                                       "added_after=%C0%80", "match%5Bid%5D=%00"])
def test_a_query_string_with_broken_escapes_never_causes_a_server_error(northtel, raw_query):
    assert_not_a_server_error(northtel.get(f"{OBJECTS}?{raw_query}"))


def test_a_huge_limit_is_clamped_to_the_maximum_page_size(northtel, before):
    response = northtel.get(OBJECTS, params={"limit": str(10 ** 30), "match[version]": "all"})
    assert response.status_code == 200
    assert len(response.json()["objects"]) == 3


ODD_OBJECT_IDS = [
    "%2E%2E", "%00", "%5C..%5C", "indicator--ü", quote("indicator--🚀"), "a" * 5000, "%FF%FE",
    quote("indicator--x'; DROP TABLE objects; --"), quote(indicator(1)["id"] + " "), quote(indicator(1)["id"] + "\n"),
    quote(indicator(1)["id"].upper()), "%20", "~", "*", "%25", "indicator--%0A",
]
ODD_IDS = pytest.mark.parametrize("object_id", [pytest.param(i, id=i[:40]) for i in ODD_OBJECT_IDS])


@ODD_IDS
@pytest.mark.parametrize("suffix", ["", "versions/"], ids=["object", "versions"])
def test_an_odd_object_id_in_the_path_is_not_found(northtel, before, object_id, suffix):
    assert_taxii_error(northtel.get(f"{OBJECTS}{object_id}/{suffix}"), 404)


@ODD_IDS
def test_deleting_an_odd_object_id_is_not_found_and_deletes_nothing(regulator, before, object_id):
    assert_taxii_error(regulator.delete(f"{OBJECTS}{object_id}/"), 404)
    assert stored_state(regulator) == before


@pytest.mark.parametrize("path", [f"{OBJECTS}%2F/", f"{OBJECTS}%2F..%2F/", f"{OBJECTS}indicator--a%2Fb/versions/"])
def test_an_encoded_slash_in_the_object_id_never_causes_a_server_error(northtel, before, path):
    """%2F is decoded to "/" before routing, so these are other paths: never a 500."""
    assert_not_a_server_error(northtel.get(path, allow_redirects=False))


# -- routing: unknown methods and URLs ------------------------------------------------------------------------

@pytest.mark.parametrize("method, path", [
    ("PUT", OBJECTS), ("PATCH", OBJECTS), ("DELETE", OBJECTS), ("PUT", ONE_OBJECT), ("POST", ONE_OBJECT),
    ("POST", MANIFEST), ("DELETE", f"/collections/{COMMUNITY}/"), ("POST", "/collections/"), ("PUT", "/"),
    ("DELETE", ONE_OBJECT + "versions/"),
], ids=lambda value: value if value.isupper() else None)
def test_an_unsupported_method_is_refused_with_405_listing_the_allowed_methods(
        northtel, regulator, before, method, path):
    response = northtel.http.request(method, northtel.api + path, data=valid_envelope_text(),
                                     headers={"Content-Type": TAXII})
    assert_taxii_error(response, 405)
    assert "GET" in response.headers["Allow"]
    assert stored_state(regulator) == before


@pytest.mark.parametrize("path", [
    "/api/nothing-here/", "/taxii3/", "/api/collections/not-a-collection/objects/",
    f"/api{ONE_OBJECT}versions/extra/", f"/api/collections/{COMMUNITY}/things/", "/api/status/", "/",
    "/api/collections/%00/", "/api/status/%00/",
])
def test_an_unknown_url_is_refused_with_404(northtel, path):
    assert_taxii_error(northtel.get(northtel.base + path), 404)
