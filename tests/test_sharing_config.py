"""Declaring the sharing rules: operators' identities and contact data in config.yaml,
each collection's TLP ceiling, unmarked rule and anonymity in collections/*.yaml."""

from __future__ import annotations

import shutil

import pytest
import yaml

from conftest import OPERATORS, REPO, write_config
from taxii_server.config import ConfigError, load_settings
from taxii_server.sharing.identities import identity_of

DECLARED = "identity--2f0c6a47-1d7e-4e49-8c51-5b8f43d1a9e2"


def test_the_shipped_collections_declare_the_defaults_of_the_sharing_rules(tmp_path):
    settings = load_settings(write_config(tmp_path), environ={})
    declared = {c.alias: (c.tlp_ceiling, c.unmarked_tlp, c.anonymous) for c in settings.collections}
    assert declared == {"advisories": ("amber+strict", "amber", False), "community": ("amber", "green", True),
                        "northtel-reports": ("red", "amber", False), "southwave-reports": ("red", "amber", False)}


def test_an_operator_has_its_declared_identity_or_a_stable_derived_one(tmp_path):
    operators = [{**op, "identity": DECLARED} if op["id"] == "northtel" else op for op in OPERATORS]
    first = load_settings(write_config(tmp_path, operators=operators), environ={})
    assert identity_of(first.operators["northtel"]) == DECLARED
    derived = identity_of(first.operators["southwave"])
    again = tmp_path / "another-deployment"
    again.mkdir()
    assert derived.startswith("identity--")
    assert derived == identity_of(load_settings(write_config(again), environ={}).operators["southwave"])


@pytest.mark.parametrize(("change", "where"), [
    ({"tlp_ceiling": "purple"}, "tlp_ceiling"),
    ({"unmarked_tlp": "accept"}, "unmarked_tlp"),
    ({"anonymous": "yes"}, "anonymous"),
])
def test_a_wrong_sharing_rule_in_a_collection_stops_the_server_naming_it(tmp_path, change, where):
    folder = tmp_path / "collections"
    shutil.copytree(REPO / "collections", folder)
    community = yaml.safe_load((folder / "community.yaml").read_text())
    (folder / "community.yaml").write_text(yaml.safe_dump({**community, **change}))
    with pytest.raises(ConfigError, match=f"community.yaml: {where}"):
        load_settings(write_config(tmp_path, collections_dir=str(folder)), environ={})


def test_a_malformed_operator_identity_stops_the_server(tmp_path):
    operators = [{**OPERATORS[0], "identity": "identity--not-a-uuid"}, *OPERATORS[1:]]
    with pytest.raises(ConfigError, match="operators/0/identity"):
        load_settings(write_config(tmp_path, operators=operators), environ={})
