"""`taxii-server import` keeps the garbage collector from walking the parsed bundle at every
full collection while it imports, and leaves the collector as it found it afterwards, whether
every object was stored or some were rejected."""

from __future__ import annotations

import gc
import json
import uuid

import pytest
from click.testing import CliRunner

from conftest import COMMUNITY, indicator
import taxii_server.sharing.screening as screening
from taxii_server.cli import main


def run_import(tmp_path, config_path, *objects: dict):
    bundle = tmp_path / f"bundle-{uuid.uuid4()}.json"
    bundle.write_text(json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": list(objects)}))
    return CliRunner().invoke(main, ["import", str(bundle), "--collection", COMMUNITY, "--config", str(config_path)],
                              env={"TAXII_STORAGE_URL": None, "TAXII_SERVER_SECRET": None, "TAXII_CONFIG": None})


def test_the_parsed_bundle_is_out_of_the_collectors_way_while_it_is_screened(tmp_path, config_path, monkeypatch):
    frozen_while_screening = []
    real_screen = screening.screen

    def screen_and_note(*args, **kwargs):
        frozen_while_screening.append(gc.get_freeze_count())
        return real_screen(*args, **kwargs)

    monkeypatch.setattr(screening, "screen", screen_and_note)
    result = run_import(tmp_path, config_path, indicator(1), indicator(2))
    assert result.exit_code == 0, result.output
    assert frozen_while_screening and all(count > 0 for count in frozen_while_screening)


@pytest.mark.parametrize("rejected", [False, True])
def test_an_import_leaves_the_collector_as_it_found_it(tmp_path, config_path, rejected):
    before = gc.get_freeze_count()
    objects = [indicator(1), {**indicator(2), "pattern": "not a pattern"}] if rejected else [indicator(1)]
    result = run_import(tmp_path, config_path, *objects)
    assert result.exit_code == (1 if rejected else 0), result.output
    assert gc.get_freeze_count() == before
