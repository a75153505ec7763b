"""Scrubbing rules for republished reports: what the built-in rules remove, what they
leave alone, and how a deployment extends them (`sharing.scrubbing_rules`)."""

from __future__ import annotations

import pytest

from conftest import write_config
from taxii_server.config import ConfigError, load_settings
from taxii_server.sharing.scrubbing import personal_data_scrubber

PERSONAL_DATA = {
    "email": "victim.name+sms@mail.example.co.uk",
    "phone, international": "+44 20 7946 0958",
    "phone, international with (0)": "+44 (0)20 7946 0958",
    "phone, international with 00": "0044 20 7946 0958",
    "phone, North American": "+1 (202) 555-0143",
    "phone, national": "020 7946 0958",
    "phone, national mobile": "07700 900123",
    "phone, national with parentheses": "(020) 7946 0958",
    "phone, national with a dash": "0171-234567",
    "MSISDN": "447700900123",
    "IMSI": "234150999999999",
    "IMSI, grouped": "234 15 0999999999",
    "IMEI": "490154203237518",
    "IMEI, grouped": "49-015420-323751-8",
    "IMEISV": "4901542032375181",
}
# Text a threat report needs, that no rule may touch.
KEPT = ["198.51.100.7", "10.0.120.100", "2026-11-29T10:41:00.123456Z", "2026-01-31", "CVE-2024-12345",
        "port 8080", "d41d8cd98f00b204e9800998ecf8427e", "version 1.2.3", "AS64500", "3 times"]


@pytest.fixture
def scrub(tmp_path):
    return personal_data_scrubber(load_settings(write_config(tmp_path), environ={}).sharing.scrub_rules)


@pytest.mark.parametrize("kind", sorted(PERSONAL_DATA))
def test_personal_data_is_removed_from_free_text(scrub, kind):
    text = f"Reported by the customer ({PERSONAL_DATA[kind]}). Nothing else."
    assert scrub(text) == "Reported by the customer ([redacted]). Nothing else."


@pytest.mark.parametrize("kept", KEPT)
def test_what_a_report_needs_is_left_alone(scrub, kept):
    text = f"Seen at {kept}, twice."
    assert scrub(text) == text


def test_a_deployment_adds_rules_applied_first_and_disables_built_in_ones(tmp_path):
    (tmp_path / "scrubbing.yaml").write_text(
        "disable: [msisdn]\nrules:\n  - {name: account, pattern: 'ACC-\\d+', replacement: '[account]'}\n")
    settings = load_settings(write_config(tmp_path, sharing={"scrubbing_rules": "scrubbing.yaml"}), environ={})
    scrub = personal_data_scrubber(settings.sharing.scrub_rules)
    assert scrub("ACC-00123456 and 447700900123 and 020 7946 0958") == "[account] and 447700900123 and [redacted]"


def test_a_rule_that_is_not_a_regular_expression_stops_the_server_naming_it(tmp_path):
    (tmp_path / "scrubbing.yaml").write_text("rules:\n  - {name: broken, pattern: '([a-z'}\n")
    with pytest.raises(ConfigError, match="rule 'broken': not a regular expression"):
        load_settings(write_config(tmp_path, sharing={"scrubbing_rules": "scrubbing.yaml"}), environ={})
