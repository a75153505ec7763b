"""Firewall feeds: the collections' active indicators as plain lists, over real HTTP.

GET /feeds/<collection>/<list> serves ipv4/ipv6/domain/url/sha256/sha1/md5 lists,
Check Point CSV and an RPZ zone, each with a `.md5` companion, to exactly the
operators who may read the collection. Entries come from plain patterns only,
are held back by the safety rules, follow new versions and revocations, and leave
the list at valid_until without any write. The feeds' clock is injected.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import uuid

import pytest
import requests

from conftest import ADVISORIES, COMMUNITY, envelope, indicator, write_config
from taxii_server.timestamps import parse_timestamp

pytestmark = pytest.mark.every_backend

NOW = parse_timestamp("2026-06-01T00:00:00Z")
TLP_GREEN = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"
TLP_AMBER = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"
SHA256 = "a" * 64
SHA1 = "b" * 40
MD5 = "c" * 32


@pytest.fixture
def config_path(tmp_path, storage_url):
    return write_config(tmp_path, storage=storage_url,
                        feeds={"allowlist": {"networks": ["8.8.8.0/24"], "domains": ["trusted.net"]},
                               "min_ipv4_prefix": 8, "min_ipv6_prefix": 32})


class Clock:
    def __init__(self, at: int):
        self.at = at

    def __call__(self) -> int:
        return self.at


@pytest.fixture
def clock(app) -> Clock:
    clock = Clock(NOW)
    app.extensions["feeds"].now = clock
    return clock


def new_indicator(pattern: str, n: int | None = None, **extra) -> dict:
    n = uuid.uuid4().int % 2 ** 32 if n is None else n
    return indicator(n, pattern=pattern, **extra)


def publish(session, *objects, collection=ADVISORIES) -> None:
    response = session.post(f"/collections/{collection}/objects/", envelope(*objects))
    assert response.status_code == 202, response.text
    assert response.json()["failure_count"] == 0, response.text


def fetch(session, list_name: str, collection: str = ADVISORIES, **kwargs) -> requests.Response:
    return session.http.get(f"{session.base}/feeds/{collection}/{list_name}", **kwargs)


def listed(session, list_name: str, collection: str = ADVISORIES, **params) -> list[str]:
    response = fetch(session, list_name, collection, params=params)
    assert response.status_code == 200, response.text
    return [line for line in response.text.splitlines() if line and not line.startswith("#")]


def report_rows(session) -> list[dict]:
    response = session.http.get(f"{session.base}/feeds/report")
    assert response.status_code == 200, response.text
    return response.json()["rows"]


# -- what goes in ----------------------------------------------------------------

PLAIN_SHAPES = [
    ("[ipv4-addr:value = '203.0.114.7']", {"ipv4.txt": ["203.0.114.7"]}),
    ("[ipv4-addr:value = '203.0.114.0/24']", {"ipv4.txt": ["203.0.114.0/24"]}),
    ("[ipv6-addr:value = '2a00:1450:4001::1']", {"ipv6.txt": ["2a00:1450:4001::1"]}),
    ("[ipv6-addr:value = '2a00:1450::/32']", {"ipv6.txt": ["2a00:1450::/32"]}),
    ("[domain-name:value = 'Evil.Bad.ZZ']", {"domain.txt": ["evil.bad.zz"]}),
    ("[url:value = 'http://evil.bad.zz/drop?a=1']", {"url.txt": ["http://evil.bad.zz/drop?a=1"]}),
    (f"[file:hashes.'SHA-256' = '{SHA256}']", {"sha256.txt": [SHA256]}),
    (f"[file:hashes.'SHA-1' = '{SHA1}']", {"sha1.txt": [SHA1]}),
    (f"[file:hashes.MD5 = '{MD5}']", {"md5.txt": [MD5]}),
    (f"[file:hashes.'MD5' = '{MD5.upper()}']", {"md5.txt": [MD5]}),
    ("[ipv4-addr:value = '203.0.114.8' OR ipv4-addr:value = '203.0.114.9']",
     {"ipv4.txt": ["203.0.114.8", "203.0.114.9"]}),
    ("[ipv4-addr:value = '203.0.114.10'] OR [domain-name:value = 'c2.bad.zz']",
     {"ipv4.txt": ["203.0.114.10"], "domain.txt": ["c2.bad.zz"]}),
    ("[domain-name:value = 'a.bad.zz' OR url:value = 'https://b.bad.zz/x'] OR "
     "[ipv6-addr:value = '2a00:1450:4001::2']",
     {"domain.txt": ["a.bad.zz"], "url.txt": ["https://b.bad.zz/x"], "ipv6.txt": ["2a00:1450:4001::2"]}),
]
EVERY_TEXT_LIST = ("ipv4.txt", "ipv6.txt", "domain.txt", "url.txt", "sha256.txt", "sha1.txt", "md5.txt")


@pytest.mark.parametrize("pattern, expected", PLAIN_SHAPES, ids=[shape for shape, _ in PLAIN_SHAPES])
def test_a_plain_pattern_puts_its_values_on_the_lists_of_their_kinds(regulator, northtel, clock, pattern, expected):
    publish(regulator, new_indicator(pattern))
    for list_name in EVERY_TEXT_LIST:
        assert listed(northtel, list_name) == expected.get(list_name, []), list_name


NOT_PLAIN = [
    "[ipv4-addr:value = '203.0.114.7' AND ipv4-addr:value = '203.0.114.8']",
    "[ipv4-addr:value != '203.0.114.7']",
    "[ipv4-addr:value ISSUBSET '203.0.114.0/24']",
    "[domain-name:value LIKE '%.bad.zz']",
    "[url:value MATCHES '^http://']",
    "[ipv4-addr:value IN ('203.0.114.7', '203.0.114.8')]",
    "[ipv4-addr:value = '203.0.114.7'] AND [domain-name:value = 'x.bad.zz']",
    "[ipv4-addr:value = '203.0.114.7'] FOLLOWEDBY [domain-name:value = 'x.bad.zz']",
    "[ipv4-addr:value = '203.0.114.7'] WITHIN 60 SECONDS",
    "([ipv4-addr:value = '203.0.114.7'])",
    "[ipv4-addr:value NOT = '203.0.114.7']",
    "[file:name = 'dropper.exe']",
    "[network-traffic:dst_ref.value = '203.0.114.7']",
    "[ipv4-addr:value = '203.0.114.7' OR file:name = 'dropper.exe']",
]


@pytest.mark.parametrize("pattern", NOT_PLAIN)
def test_a_pattern_that_is_not_plain_is_left_out_and_reported(regulator, northtel, clock, pattern):
    item = new_indicator(pattern)
    publish(regulator, item)
    for list_name in EVERY_TEXT_LIST:
        assert listed(northtel, list_name) == []
    [row] = [row for row in report_rows(regulator) if row["indicator_id"] == item["id"]]
    assert row["outcome"] == "left out" and row["reason"].startswith("pattern ")


def test_a_pattern_in_another_language_is_left_out(regulator, northtel, clock):
    item = new_indicator("alert tcp any any -> 203.0.114.7 any (msg:\"x\";)", pattern_type="snort")
    publish(regulator, item)
    assert listed(northtel, "ipv4.txt") == []
    assert [row["reason"] for row in report_rows(regulator) if row["indicator_id"] == item["id"]] == \
        ["pattern_type 'snort' is not stix"]


# -- only what is active now ------------------------------------------------------

def test_an_entry_leaves_the_list_at_valid_until_without_any_write(app, regulator, northtel, clock):
    publish(regulator, new_indicator("[ipv4-addr:value = '203.0.114.20']", valid_until="2026-06-02T00:00:00Z"))
    assert listed(northtel, "ipv4.txt") == ["203.0.114.20"]
    store = app.extensions["taxii"].store
    state = store.feed_state(ADVISORIES)
    clock.at = parse_timestamp("2026-06-01T23:59:59.999999Z")
    assert listed(northtel, "ipv4.txt") == ["203.0.114.20"]
    clock.at = parse_timestamp("2026-06-02T00:00:00Z")
    assert listed(northtel, "ipv4.txt") == []
    assert store.feed_state(ADVISORIES) == state  # nothing was written to make it leave


def test_an_entry_joins_the_list_at_valid_from(regulator, northtel, clock):
    publish(regulator, new_indicator("[ipv4-addr:value = '203.0.114.21']", valid_from="2026-07-01T00:00:00Z"))
    assert listed(northtel, "ipv4.txt") == []
    clock.at = parse_timestamp("2026-07-01T00:00:00Z")
    assert listed(northtel, "ipv4.txt") == ["203.0.114.21"]


def test_a_new_version_replaces_the_values_of_the_old_one(regulator, northtel, clock):
    publish(regulator, new_indicator("[ipv4-addr:value = '203.0.114.30']", n=7))
    assert listed(northtel, "ipv4.txt") == ["203.0.114.30"]
    publish(regulator, new_indicator("[domain-name:value = 'new.bad.zz']", n=7, modified="2026-02-01T00:00:00.000Z"))
    assert listed(northtel, "ipv4.txt") == []
    assert listed(northtel, "domain.txt") == ["new.bad.zz"]


def test_an_older_version_stored_later_changes_nothing(regulator, northtel, clock):
    publish(regulator, new_indicator("[ipv4-addr:value = '203.0.114.31']", n=8, modified="2026-03-01T00:00:00.000Z"))
    assert listed(northtel, "ipv4.txt") == ["203.0.114.31"]
    publish(regulator, new_indicator("[ipv4-addr:value = '203.0.114.32']", n=8, modified="2026-02-01T00:00:00.000Z"))
    assert listed(northtel, "ipv4.txt") == ["203.0.114.31"]


def test_revocation_removes_the_values_and_an_older_version_cannot_bring_them_back(regulator, northtel, clock):
    publish(regulator, new_indicator("[ipv4-addr:value = '203.0.114.33']", n=9))
    assert listed(northtel, "ipv4.txt") == ["203.0.114.33"]
    publish(regulator, new_indicator("[ipv4-addr:value = '203.0.114.33']", n=9, modified="2026-02-01T00:00:00.000Z",
                                     revoked=True))
    assert listed(northtel, "ipv4.txt") == []
    publish(regulator, new_indicator("[ipv4-addr:value = '203.0.114.33']", n=9, modified="2026-01-15T00:00:00.000Z"))
    assert listed(northtel, "ipv4.txt") == []


def test_many_versions_are_read_in_batches_until_the_collection_is_read_through(app, regulator, northtel, clock):
    app.extensions["feeds"].batch = 3
    publish(regulator, *[new_indicator(f"[ipv4-addr:value = '203.0.114.{n}']", n=100 + n) for n in range(1, 11)])
    assert sorted(listed(northtel, "ipv4.txt")) == sorted(f"203.0.114.{n}" for n in range(1, 11))


# -- safety -----------------------------------------------------------------------

HELD_BACK = [
    ("[ipv4-addr:value = '10.1.2.3']", "overlaps the allowlisted network 10.0.0.0/8"),
    ("[ipv4-addr:value = '127.0.0.1']", "overlaps the allowlisted network 127.0.0.0/8"),
    ("[ipv4-addr:value = '192.0.2.1']", "overlaps the allowlisted network 192.0.2.0/24"),
    ("[ipv4-addr:value = '224.0.0.251']", "overlaps the allowlisted network 224.0.0.0/4"),
    ("[ipv4-addr:value = '169.254.1.1']", "overlaps the allowlisted network 169.254.0.0/16"),
    ("[ipv4-addr:value = '8.8.8.8']", "overlaps the allowlisted network 8.8.8.0/24"),
    ("[ipv4-addr:value = '8.0.0.0/6']", "prefix /6 is shorter than /8"),
    ("[ipv4-addr:value = '0.0.0.0/0']", "prefix /0 is shorter than /8"),
    ("[ipv4-addr:value = '8.0.0.0/7']", "prefix /7 is shorter than /8"),
    ("[ipv6-addr:value = '::1']", "overlaps the allowlisted network ::1/128"),
    ("[ipv6-addr:value = 'fe80::1']", "overlaps the allowlisted network fe80::/10"),
    ("[ipv6-addr:value = '2001:db8::1']", "overlaps the allowlisted network 2001:db8::/32"),
    ("[ipv6-addr:value = '2a00::/16']", "prefix /16 is shorter than /32"),
    ("[domain-name:value = 'com']", "a bare top-level domain"),
    ("[domain-name:value = '*.evil.bad.zz']", "wildcard domain"),
    ("[domain-name:value = 'printer.local']", "within the allowlisted domain local"),
    ("[domain-name:value = 'localhost']", "a bare top-level domain"),
    ("[domain-name:value = 'mail.trusted.net']", "within the allowlisted domain trusted.net"),
    ("[url:value = 'http://10.0.0.1/admin']", "its host is in the allowlisted network 10.0.0.0/8"),
    ("[url:value = 'https://portal.trusted.net/login']", "its host is within the allowlisted domain trusted.net"),
    ("[ipv4-addr:value = '999.1.1.1']", "invalid: '999.1.1.1' is not an IPV4 address or network"),
    ("[domain-name:value = 'bad name.bad.zz']", "invalid: 'bad name.bad.zz' is not a domain name"),
]


@pytest.mark.parametrize("pattern, reason", HELD_BACK, ids=[shape for shape, _ in HELD_BACK])
def test_an_entry_that_could_cut_a_licensee_off_is_held_back_and_reported(regulator, northtel, clock, pattern, reason):
    item = new_indicator(pattern)
    publish(regulator, item)
    for list_name in (*EVERY_TEXT_LIST, "iocs.csv", "rpz.zone"):
        assert not [line for line in listed(northtel, list_name) if not line.startswith(("$", "@", ";"))]
    assert [(row["outcome"], row["reason"]) for row in report_rows(regulator) if row["indicator_id"] == item["id"]] == \
        [("held back", reason)]


def test_a_held_value_does_not_hold_back_the_other_values_of_its_pattern(regulator, northtel, clock):
    publish(regulator, new_indicator("[ipv4-addr:value = '10.0.0.1' OR ipv4-addr:value = '203.0.114.40']"))
    assert listed(northtel, "ipv4.txt") == ["203.0.114.40"]


def test_the_feed_report_is_the_regulators_alone(regulator, northtel, southwave):
    assert regulator.http.get(f"{regulator.base}/feeds/report").status_code == 200
    for licensee in (northtel, southwave):
        assert licensee.http.get(f"{licensee.base}/feeds/report").status_code == 404


# -- order, filters, deduplication ------------------------------------------------

def test_highest_confidence_first_then_newest_each_value_once_and_limit_keeps_the_best(regulator, northtel, clock):
    publish(regulator,
            new_indicator("[ipv4-addr:value = '203.0.114.50']", confidence=50),
            new_indicator("[ipv4-addr:value = '203.0.114.51']", confidence=90),
            new_indicator("[ipv4-addr:value = '203.0.114.52']"),
            new_indicator("[ipv4-addr:value = '203.0.114.50']", confidence=10))
    publish(regulator, new_indicator("[ipv4-addr:value = '203.0.114.53']", confidence=50))
    assert listed(northtel, "ipv4.txt") == ["203.0.114.51", "203.0.114.53", "203.0.114.50", "203.0.114.52"]
    assert listed(northtel, "ipv4.txt", limit=2) == ["203.0.114.51", "203.0.114.53"]
    assert listed(northtel, "ipv4.txt", min_confidence=50) == ["203.0.114.51", "203.0.114.53", "203.0.114.50"]


def test_max_tlp_and_types_filter_the_list(regulator, northtel, clock):
    publish(regulator,
            new_indicator("[ipv4-addr:value = '203.0.114.60']", object_marking_refs=[TLP_GREEN],
                          indicator_types=["malicious-activity"]),
            new_indicator("[ipv4-addr:value = '203.0.114.61']", object_marking_refs=[TLP_AMBER],
                          indicator_types=["anomalous-activity"]),
            new_indicator("[ipv4-addr:value = '203.0.114.62']"))
    assert sorted(listed(northtel, "ipv4.txt", max_tlp="green")) == ["203.0.114.60", "203.0.114.62"]
    assert listed(northtel, "ipv4.txt", types="malicious-activity") == ["203.0.114.60"]
    assert sorted(listed(northtel, "ipv4.txt", types="anomalous-activity,malicious-activity")) == \
        ["203.0.114.60", "203.0.114.61"]


@pytest.mark.parametrize("params", [{"limit": "0"}, {"limit": "x"}, {"min_confidence": "101"}, {"max_tlp": "purple"},
                                    {"types": "Bad Type"}, {"comments": "yes"}])
def test_a_malformed_filter_is_a_400(northtel, clock, params):
    response = fetch(northtel, "ipv4.txt", params=params)
    assert response.status_code == 400
    assert response.json()["http_status"] == "400"


# -- formats ----------------------------------------------------------------------

def test_lists_start_with_comments_saying_what_they_are(regulator, northtel, clock):
    publish(regulator, new_indicator("[ipv4-addr:value = '203.0.114.70']"))
    response = fetch(northtel, "ipv4.txt", headers={"Accept": "text/plain"})
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
    comments = [line for line in response.text.splitlines() if line.startswith("#")]
    assert "ipv4.txt from collection" in comments[0] and ADVISORIES in comments[0]
    assert "1 entries" in comments[1]
    assert listed(northtel, "ipv4.txt", comments="0") == ["203.0.114.70"]
    assert fetch(northtel, "ipv4.txt", params={"comments": "0"}).text == "203.0.114.70\n"


def test_check_point_csv_parses_back_with_its_columns(regulator, northtel, clock):
    publish(regulator,
            new_indicator("[ipv4-addr:value = '203.0.114.80']", confidence=90, indicator_types=["malicious-activity"],
                          name="C2, \"primary\""),
            new_indicator("[ipv4-addr:value = '203.0.114.0/30']", confidence=20),
            new_indicator("[domain-name:value = 'c2.bad.zz']", confidence=50),
            new_indicator(f"[file:hashes.'SHA-256' = '{SHA256}']", confidence=60, indicator_types=["benign"]),
            new_indicator("[ipv6-addr:value = '2a00:1450:4001::9']", confidence=95))  # Check Point's IP is IPv4
    text = fetch(northtel, "iocs.csv").text
    assert "# UNIQ-NAME,VALUE,TYPE,CONFIDENCE,SEVERITY,PRODUCT,COMMENT" in text
    rows = list(csv.reader(io.StringIO(text.split("COMMENT\n", 1)[1])))
    assert [row[1:] for row in rows] == [
        ["203.0.114.80", "IP", "high", "high", "AB", 'C2, "primary"'],
        [SHA256, "SHA256", "medium", "low", "AV", rows[1][6]],
        ["c2.bad.zz", "Domain", "medium", "medium", "AB", rows[2][6]],
        ["203.0.114.0-203.0.114.3", "IP Range", "low", "medium", "AB", rows[3][6]],
    ]
    assert len({row[0] for row in rows}) == 4


def test_the_rpz_zone_answers_nxdomain_for_each_domain_and_its_subdomains(regulator, northtel, clock):
    publish(regulator, new_indicator("[domain-name:value = 'c2.bad.zz']"))
    lines = fetch(northtel, "rpz.zone").text.splitlines()
    records = [line for line in lines if not line.startswith(";")]
    assert records[0].startswith("$TTL ")
    assert records[1].startswith("@ IN SOA ") and records[2] == "@ IN NS localhost."
    assert records[3:] == ["c2.bad.zz CNAME .", "*.c2.bad.zz CNAME ."]


@pytest.mark.parametrize("list_name", [*EVERY_TEXT_LIST, "iocs.csv", "rpz.zone"])
def test_each_list_has_an_md5_companion_of_its_exact_bytes(regulator, northtel, clock, list_name):
    publish(regulator, new_indicator("[ipv4-addr:value = '203.0.114.90'] OR [domain-name:value = 'x.bad.zz']"))
    body = fetch(northtel, list_name, params={"limit": "5"}).content
    companion = fetch(northtel, list_name + ".md5", params={"limit": "5"})
    assert companion.status_code == 200
    assert companion.text.strip() == hashlib.md5(body).hexdigest()


def test_an_unknown_list_is_a_404(northtel, clock):
    assert fetch(northtel, "ipv5.txt").status_code == 404
    assert fetch(northtel, "ipv4.txt.sha1").status_code == 404


# -- polling cheaply ----------------------------------------------------------------

def test_if_none_match_gets_a_304_until_the_list_changes(regulator, northtel, clock):
    publish(regulator, new_indicator("[ipv4-addr:value = '203.0.114.100']"))
    first = fetch(northtel, "ipv4.txt")
    etag = first.headers["ETag"]
    again = fetch(northtel, "ipv4.txt", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["ETag"] == etag
    assert fetch(northtel, "ipv4.txt", params={"limit": "1"}, headers={"If-None-Match": etag}).status_code == 200
    publish(regulator, new_indicator("[ipv4-addr:value = '203.0.114.101']"))
    changed = fetch(northtel, "ipv4.txt", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag


def test_expiry_changes_the_etag_without_any_write(regulator, northtel, clock):
    publish(regulator, new_indicator("[ipv4-addr:value = '203.0.114.102']", valid_until="2026-06-02T00:00:00Z"))
    etag = fetch(northtel, "ipv4.txt").headers["ETag"]
    clock.at = parse_timestamp("2026-06-02T00:00:00Z")
    response = fetch(northtel, "ipv4.txt", headers={"If-None-Match": etag})
    assert response.status_code == 200 and "203.0.114.102" not in response.text


def test_if_modified_since_gets_a_304_once_the_last_change_has_settled(regulator, northtel, clock):
    publish(regulator, new_indicator("[ipv4-addr:value = '203.0.114.103']"))
    last_modified = fetch(northtel, "ipv4.txt").headers["Last-Modified"]
    clock.at += 2_000_000
    assert fetch(northtel, "ipv4.txt", headers={"If-Modified-Since": last_modified}).status_code == 304
    assert fetch(northtel, "ipv4.txt",
                 headers={"If-Modified-Since": "Mon, 01 Jan 2024 00:00:00 GMT"}).status_code == 200


def test_gzip_when_asked(regulator, northtel, clock):
    publish(regulator, new_indicator("[ipv4-addr:value = '203.0.114.104']"))
    plain = fetch(northtel, "ipv4.txt", headers={"Accept-Encoding": "identity"})
    zipped = northtel.http.get(f"{northtel.base}/feeds/{ADVISORIES}/ipv4.txt",
                               headers={"Accept-Encoding": "gzip"}, stream=True)
    assert zipped.headers["Content-Encoding"] == "gzip" and "Content-Encoding" not in plain.headers
    assert gzip.decompress(zipped.raw.read()) == plain.content
    assert zipped.headers["ETag"] != plain.headers["ETag"]


# -- keys and rights ----------------------------------------------------------------

RIGHTS = {"advisories": ("regulator", "northtel", "southwave"), "community": ("regulator", "northtel", "southwave"),
          "northtel-reports": ("regulator", "northtel"), "southwave-reports": ("regulator", "southwave")}


@pytest.mark.parametrize("alias", sorted(RIGHTS))
@pytest.mark.parametrize("operator", ["regulator", "northtel", "southwave"])
def test_a_feed_exists_for_exactly_the_operators_who_read_its_collection(as_operator, clock, alias, operator):
    response = fetch(as_operator(operator), "ipv4.txt", alias)
    assert response.status_code == (200 if operator in RIGHTS[alias] else 404)


def test_an_unknown_collection_has_no_feed(northtel, clock):
    assert fetch(northtel, "ipv4.txt", "no-such-collection").status_code == 404


@pytest.mark.parametrize("scheme", ["basic", "bearer", "token"])
def test_the_same_api_keys_by_basic_bearer_or_token(as_operator, clock, scheme):
    assert fetch(as_operator("northtel", scheme), "ipv4.txt", COMMUNITY).status_code == 200


def test_no_key_or_a_wrong_one_is_a_401_with_a_basic_challenge(server, clock):
    for auth in (None, ("northtel", "tx_bad_key")):
        response = requests.get(f"{server.url}/feeds/{ADVISORIES}/ipv4.txt", auth=auth)
        assert response.status_code == 401 and "Basic" in response.headers["WWW-Authenticate"]


def test_every_fetch_is_audited(app, northtel, clock):
    fetch(northtel, "ipv4.txt")
    fetch(northtel, "ipv4.txt", "southwave-reports")
    app.extensions["taxii"].bookkeeper.flush()  # reads are written to the trail in batches
    events = [e for e in app.extensions["taxii"].store.query_audit(operator_id="northtel") if "/feeds/" in e.path]
    assert [(e.status, e.collection_id) for e in events] == [(200, ADVISORIES), (404, None)]


def test_deleting_the_latest_version_brings_back_the_one_before_and_deleting_all_empties_the_list(
        regulator, northtel, clock):
    publish(regulator, new_indicator("[ipv4-addr:value = '203.0.114.110']", n=11))
    publish(regulator, new_indicator("[ipv4-addr:value = '203.0.114.111']", n=11, modified="2026-02-01T00:00:00.000Z"))
    assert listed(northtel, "ipv4.txt") == ["203.0.114.111"]
    object_url = f"/collections/{ADVISORIES}/objects/{new_indicator('', n=11)['id']}/"
    assert regulator.delete(object_url, params={"match[version]": "2026-02-01T00:00:00.000Z"}).status_code == 200
    assert listed(northtel, "ipv4.txt") == ["203.0.114.110"]
    assert regulator.delete(object_url).status_code == 200
    assert listed(northtel, "ipv4.txt") == []
