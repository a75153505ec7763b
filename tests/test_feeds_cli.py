"""`taxii-server feeds refresh` and `taxii-server feeds report`, in-process through click's runner."""

from __future__ import annotations

import json

from click.testing import CliRunner

from conftest import COMMUNITY, indicator, write_config
from taxii_server.cli import main
from taxii_server.storage.base import FeedState
from taxii_server.validation import check_object


def run(config_path, *args):
    return CliRunner().invoke(main, [*args, "--config", str(config_path)],
                              env={"TAXII_STORAGE_URL": None, "TAXII_SERVER_SECRET": None, "TAXII_CONFIG": None})


def store_indicators(store, *patterns: str) -> list[str]:
    items = [indicator(n, pattern=pattern) for n, pattern in enumerate(patterns)]
    store.add_versions(COMMUNITY, [check_object(item) for item in items])
    return [item["id"] for item in items]


def test_refresh_builds_every_collections_feed_entries(config_path, store):
    store_indicators(store, "[ipv4-addr:value = '203.0.114.1']")
    assert store.feed_state(COMMUNITY) is None
    result = run(config_path, "feeds", "refresh")
    assert result.exit_code == 0, result.output
    state = store.feed_state(COMMUNITY)
    assert isinstance(state, FeedState) and state.cursor > 0


def test_report_says_what_was_held_back_and_left_out_and_why(config_path, store):
    held, left_out, _ = store_indicators(store, "[ipv4-addr:value = '10.0.0.1']", "[file:name = 'x.exe']",
                                         "[ipv4-addr:value = '203.0.114.2']")
    result = run(config_path, "feeds", "report", "--collection", "community", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert [(row["indicator_id"], row["outcome"], row["value"]) for row in report["rows"]] == [
        (held, "held back", "10.0.0.1"), (left_out, "left out", "")]
    assert {(count["outcome"], count["count"]) for count in report["summary"]} == {("held back", 1), ("left out", 1)}
    text = run(config_path, "feeds", "report")
    assert text.exit_code == 0 and "overlaps the allowlisted network 10.0.0.0/8" in text.output
    assert run(config_path, "feeds", "report", "--collection", "nowhere").exit_code != 0


def test_a_bad_allowlist_entry_stops_check_naming_it(tmp_path):
    config_path = write_config(tmp_path, feeds={"allowlist": {"networks": ["10.0.0.0/33"]}})
    result = run(config_path, "check")
    assert result.exit_code != 0
    assert "feeds/allowlist" in result.output and "10.0.0.0/33" in result.output
