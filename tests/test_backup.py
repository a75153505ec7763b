"""Backups of the SQLite store while it serves, and restores: every acknowledged object,
the keys and the audit trail come back; a backup is one consistent instant."""

from __future__ import annotations

import itertools
import shutil
import stat
import subprocess
import threading
import time

import pytest
import requests
from click.testing import CliRunner

from conftest import COMMUNITY, TAXII, envelope, indicator, write_config
from taxii_server.cli import main
from taxii_server.config import load_settings
from taxii_server.keys import issue_key
from taxii_server.storage import open_store
from test_crash_safety import EXECUTABLE, OVERRIDES, TaxiiServerProcess

WRITERS = 3


def cli(config_path, *args):
    return CliRunner().invoke(main, [*args, "--config", str(config_path)], env={name: None for name in OVERRIDES})


def all_versions(store) -> list[tuple[int, str]]:
    """(date_added, object id) of every stored version, in date_added order."""
    found = []
    for collection_id in store.collection_ids():
        found += [(v.date_added, v.object_id) for v in store.export_versions(collection_id, None, 1_000_000)]
    return sorted(found)


class Publisher(threading.Thread):
    """POSTs new indicators until stopped, noting when each was acknowledged."""

    numbers = itertools.count(1)

    def __init__(self, url: str, key: str, stop: threading.Event):
        super().__init__(daemon=True)
        self.url, self.key, self.stop = url, key, stop
        self.acknowledged: list[tuple[float, str]] = []

    def run(self):
        http = requests.Session()
        http.headers.update({"Authorization": f"Bearer {self.key}", "Accept": TAXII, "Content-Type": TAXII})
        while not self.stop.is_set():
            objects = [indicator(next(self.numbers)) for _ in range(2)]
            answer = http.post(f"{self.url}/api/collections/{COMMUNITY}/objects/", json=envelope(*objects))
            if answer.status_code == 202 and answer.json()["success_count"] == 2:
                self.acknowledged += [(time.monotonic(), obj["id"]) for obj in objects]


def test_a_backup_taken_under_load_restores_every_acknowledged_object_the_keys_and_the_audit(tmp_path):
    config_path = write_config(tmp_path)
    settings = load_settings(config_path, environ={})
    key = issue_key(open_store(settings.storage_url), settings.secret, "northtel").raw_key
    server = TaxiiServerProcess(config_path, tmp_path / "serve.log", workers=2)
    server.start()
    stop = threading.Event()
    publishers = [Publisher(server.url, key, stop) for _ in range(WRITERS)]
    backup = tmp_path / "backups" / "taxii-backup.sqlite3"
    try:
        for publisher in publishers:
            publisher.start()
        while sum(len(p.acknowledged) for p in publishers) < 60:
            time.sleep(0.05)
        backup_started = time.monotonic()
        made = subprocess.run([str(EXECUTABLE), "backup", str(backup), "--config", str(config_path)],
                              capture_output=True, text=True)
        backup_finished = time.monotonic()
        assert made.returncode == 0, made.stderr
        while not any(t > backup_finished for p in publishers for t, _ in p.acknowledged):
            time.sleep(0.05)  # the writers carry on after the backup
    finally:
        stop.set()
        for publisher in publishers:
            publisher.join()
        server.stop()
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert not list(backup.parent.glob(".*partial"))
    before_backup = {object_id for p in publishers for t, object_id in p.acknowledged if t < backup_started}

    # The backup is one instant of the store: exactly the versions up to some date_added, no later one.
    original = all_versions(open_store(settings.storage_url))
    in_backup = all_versions(open_store(f"sqlite:///{backup}"))
    assert in_backup == original[:len(in_backup)]
    assert len(in_backup) < len(original)

    # Restore into a new deployment that has the same server secret.
    restored = tmp_path / "restored"
    restored.mkdir()
    shutil.copy(tmp_path / "server.secret", restored / "server.secret")
    restored_config = write_config(restored)
    result = cli(restored_config, "restore", str(backup))
    assert result.exit_code == 0, result.output
    restored_server = TaxiiServerProcess(restored_config, tmp_path / "restored.log", workers=1)
    restored_server.start()
    try:
        http = requests.Session()
        http.headers.update({"Authorization": f"Bearer {key}", "Accept": TAXII})
        assert http.get(f"{restored_server.url}/api/collections/").status_code == 200  # the key works
        served, url = set(), f"{restored_server.url}/api/collections/{COMMUNITY}/manifest/"
        params = {"limit": 1000}
        while True:
            page = http.get(url, params=params).json()
            served |= {entry["id"] for entry in page.get("objects", [])}
            if not page.get("more"):
                break
            params["next"] = page["next"]
    finally:
        restored_server.stop()
    assert before_backup <= served
    audit = cli(restored_config, "audit", "--operator", "northtel", "--limit", "100000")
    posts = [line for line in audit.output.splitlines() if f" POST /api/collections/{COMMUNITY}/objects/" in line]
    assert len(posts) >= len(before_backup) // 2


@pytest.fixture
def deployment(tmp_path):
    config_path = write_config(tmp_path)
    settings = load_settings(config_path, environ={})
    return config_path, settings, open_store(settings.storage_url)


def test_a_backup_never_overwrites_a_file(deployment, tmp_path):
    config_path, _, _ = deployment
    existing = tmp_path / "kept.sqlite3"
    existing.write_text("precious")
    result = cli(config_path, "backup", str(existing))
    assert result.exit_code != 0 and "never overwrites" in result.output
    assert existing.read_text() == "precious"


def test_restore_replaces_a_store_with_data_only_when_told_to(deployment, tmp_path):
    config_path, settings, store = deployment
    kept = issue_key(store, settings.secret, "northtel").record.key_id
    assert cli(config_path, "backup", str(tmp_path / "b.sqlite3")).exit_code == 0
    later = issue_key(store, settings.secret, "southwave").record.key_id
    store.close()

    refused = cli(config_path, "restore", str(tmp_path / "b.sqlite3"))
    assert refused.exit_code != 0 and "--force" in refused.output
    assert cli(config_path, "restore", str(tmp_path / "b.sqlite3"), "--force").exit_code == 0
    keys = {record.key_id for record in open_store(settings.storage_url).list_keys()}
    assert kept in keys and later not in keys


@pytest.mark.parametrize("content", [b"not a database at all", b""])
def test_restore_refuses_a_file_that_is_not_a_store(deployment, tmp_path, content):
    config_path, settings, store = deployment
    store.add_versions(COMMUNITY, [])
    bogus = tmp_path / "bogus.sqlite3"
    bogus.write_bytes(content)
    result = cli(config_path, "restore", str(bogus), "--force")
    assert result.exit_code != 0 and str(bogus) in result.output
    assert open_store(settings.storage_url).list_keys() == []  # the store is as it was


def test_on_mongodb_backup_points_to_mongodump(tmp_path):
    import backends  # noqa: F401  (registers mongomock://)

    config_path = write_config(tmp_path, storage="mongomock://backup-test/taxii")
    result = cli(config_path, "backup", str(tmp_path / "b"))
    assert result.exit_code != 0 and "mongodump --oplog" in result.output
