"""What the portal's forms write: valid STIX 2.1 from plain values, checked by
the same validation as every TAXII POST."""

from __future__ import annotations

import pytest

from taxii_server.portal import authoring
from taxii_server.portal.stix_view import TLP2, tlp_of, validity_of
from taxii_server.storage.base import NewVersion
from taxii_server.timestamps import parse_timestamp
from taxii_server.validation import check_object

DETAILS = authoring.Details(name="Finding", description="Seen at the border.", tlp="amber",
                            valid_from=parse_timestamp("2026-11-01T00:00:00Z"),
                            valid_until=parse_timestamp("2026-12-31T23:59:59Z"))


@pytest.mark.parametrize("kind, value, pattern", [
    ("ipv4", "203.0.113.7", "[ipv4-addr:value = '203.0.113.7']"),
    ("ipv4", "198.51.100.0/24", "[ipv4-addr:value = '198.51.100.0/24']"),
    ("ipv6", "2001:db8::1", "[ipv6-addr:value = '2001:db8::1']"),
    ("domain", "login.bank-example.com", "[domain-name:value = 'login.bank-example.com']"),
    ("url", "http://x.example/a'b\\c", "[url:value = 'http://x.example/a\\'b\\\\c']"),
    ("sha256", "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08",
     "[file:hashes.'SHA-256' = '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08']"),
    ("md5", "d41d8cd98f00b204e9800998ecf8427e", "[file:hashes.MD5 = 'd41d8cd98f00b204e9800998ecf8427e']"),
])
def test_each_kind_of_value_becomes_a_valid_indicator(kind, value, pattern):
    values, problems = authoring.parse_values(f"\n  {value}  \n{value}\n", kind)
    assert (values, problems) == ([value], [])
    [made] = authoring.indicators(kind, values, DETAILS)
    assert made["pattern"] == pattern
    assert isinstance(check_object(made), NewVersion)
    assert tlp_of(made) == "amber" and made["object_marking_refs"] == [TLP2["amber"]]
    assert validity_of(made, now=parse_timestamp("2026-11-15T00:00:00Z")).state == "active"


@pytest.mark.parametrize("kind, value", [("ipv4", "2001:db8::1"), ("ipv6", "203.0.113.7"), ("ipv4", "300.1.1.1"),
                                         ("domain", "not a domain"), ("url", "x.example/no-scheme"),
                                         ("sha256", "abc"), ("md5", "g" * 32)])
def test_a_value_of_another_kind_is_named_with_its_line(kind, value):
    values, problems = authoring.parse_values(f"\n{value}", kind)
    assert values == [] and problems == [f"line 2: {value!r} is not a valid {authoring.KINDS[kind].label}"]


def test_an_advisory_is_a_report_over_its_indicators_and_an_acknowledgement_an_opinion_on_it():
    indicators = authoring.indicators("domain", ["a.example", "b.example"], DETAILS)
    advisory = authoring.advisory(DETAILS, indicators)
    assert advisory["type"] == "report" and advisory["object_refs"] == [i["id"] for i in indicators]
    opinion = authoring.acknowledgement(advisory["id"], "NorthTel")
    assert (opinion["opinion"], opinion["object_refs"]) == ("agree", [advisory["id"]])
    for made in (*indicators, advisory, opinion):
        assert isinstance(check_object(made), NewVersion), made


def test_validity_reads_expired_and_not_yet_valid():
    [made] = authoring.indicators("domain", ["a.example"], DETAILS)
    assert validity_of(made, now=parse_timestamp("2027-01-01T00:00:00Z")).state == "expired"
    assert validity_of(made, now=parse_timestamp("2026-10-01T00:00:00Z")).state == "not yet valid"
