"""The server's files are readable by its own user only (security issue, point 11).

Under a umask that would leave them open to everyone (000), the commands and
the server create the store's folder 0700 and its files (database, WAL and
shared memory) 0600, and the secret file 0600 in a 0700 folder; `taxii-server
check` warns about any of them that others may read.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from conftest import COMMUNITY, TAXII, envelope, free_port, indicator, write_config

BIN = Path(sys.executable).parent
OVERRIDES = ("TAXII_STORAGE_URL", "TAXII_SERVER_SECRET", "TAXII_CONFIG")


def run(*arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    environ = {name: value for name, value in os.environ.items() if name not in OVERRIDES}
    return subprocess.run([str(BIN / "taxii-server"), *arguments], capture_output=True, text=True, env=environ,
                          cwd=cwd, umask=0, check=False)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def deployment(tmp_path) -> Path:
    return write_config(tmp_path, storage="sqlite:///store/taxii.sqlite3", secret_file="secrets/server.secret")


def test_files_made_under_an_open_umask_are_private_to_the_server(deployment):
    folder = deployment.parent
    issued = run("keys", "issue", "northtel", "--config", str(deployment), cwd=folder)
    assert issued.returncode == 0, issued.stderr
    key = issued.stdout.strip().splitlines()[-1]
    port = free_port()
    environ = {name: value for name, value in os.environ.items() if name not in OVERRIDES}
    server = subprocess.Popen([str(BIN / "taxii-server"), "serve", "--config", str(deployment), "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environ, cwd=folder, umask=0)
    try:
        url = f"http://127.0.0.1:{port}/api/collections/{COMMUNITY}/objects/"
        headers = {"Accept": TAXII, "Content-Type": TAXII, "Authorization": f"Bearer {key}"}
        for _ in range(400):
            try:
                answer = requests.post(url, json=envelope(indicator(1)), headers=headers, timeout=10)
                break
            except requests.ConnectionError:
                time.sleep(0.05)
        assert answer.status_code == 202
        store = folder / "store"
        assert {path.name: mode(path) for path in store.iterdir()} == {
            "taxii.sqlite3": 0o600, "taxii.sqlite3-wal": 0o600, "taxii.sqlite3-shm": 0o600}
        assert mode(store) == 0o700
        assert mode(folder / "secrets") == 0o700 and mode(folder / "secrets" / "server.secret") == 0o600
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_check_warns_about_store_and_secret_files_others_may_read(deployment):
    folder = deployment.parent
    assert run("check", "--config", str(deployment), cwd=folder).returncode == 0
    quiet = run("check", "--config", str(deployment), cwd=folder)
    assert "warning" not in quiet.stderr
    os.chmod(folder / "store" / "taxii.sqlite3", 0o644)
    os.chmod(folder / "secrets", 0o755)
    checked = run("check", "--config", str(deployment), cwd=folder)
    assert checked.returncode == 0 and checked.stdout.startswith("ok:")
    assert f"warning: {folder / 'store' / 'taxii.sqlite3'} has mode 0644: other users may read it" in checked.stderr
    assert f"warning: {folder / 'secrets'} has mode 0755" in checked.stderr
