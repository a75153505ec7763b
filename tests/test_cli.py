"""The `taxii-server` command line: check, operators, import, keys, serve, and the
gunicorn WSGI entry point.

Commands run in-process through click's runner against a temporary deployment
(`write_config`), except where the installed executable itself is the subject:
`--help`, `serve` (a real gunicorn subprocess on a free port) and the WSGI module.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
import yaml
from click.testing import CliRunner

from conftest import COMMUNITY, REPO, TAXII, envelope, indicator, write_config, free_port
from taxii_server.cli import main
from taxii_server.keys import KEY_PATTERN
from taxii_server.storage import open_store
from taxii_server.storage.base import ObjectQuery

EXECUTABLE = Path(sys.executable).with_name("taxii-server")
# Variables that would point a command somewhere else than the test deployment.
OVERRIDES = ("TAXII_STORAGE_URL", "TAXII_SERVER_SECRET", "TAXII_CONFIG")


# --- helpers --------------------------------------------------------------------------------------

def cli(config: Path, *args: str, env: dict | None = None):
    """Run `taxii-server <args> --config <config>` in-process; the environment carries no overrides
    unless given."""
    cleared = {name: None for name in OVERRIDES}
    return CliRunner().invoke(main, [*args, "--config", str(config)], env={**cleared, **(env or {})})


def clean_environ(**extra: str) -> dict:
    environ = {k: v for k, v in os.environ.items() if k not in OVERRIDES}
    return {**environ, **extra}


def bundle_file(folder: Path, *objects: dict, name: str = "bundle.json") -> Path:
    path = folder / name
    path.write_text(json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": list(objects)}))
    return path


def stored_ids(storage_url: str, collection_id: str) -> list[str]:
    store = open_store(storage_url)
    try:
        return [r.object_id for r in store.query(ObjectQuery(collection_id=collection_id, limit=1000)).records]
    finally:
        store.close()


def rights_listing(output: str) -> dict[str, dict[str, str]]:
    """`operators` output -> {operator id: {collection alias: "read" | "write" | "read+write"}}."""
    listing: dict[str, dict[str, str]] = {}
    current = None  # the operator whose collections the indented lines list
    for line in output.splitlines():
        if line.startswith("    "):
            mode, alias, _ = line.split(maxsplit=2)
            listing[current][alias] = mode
        elif line.strip():
            current = line.split()[0]
            listing[current] = {"role": line.split("role=")[1].split()[0]}
    return listing


# --- --help, check --------------------------------------------------------------------------------

def test_help_lists_every_command():
    """The installed executable, next to the venv's python, describes its commands."""
    shown = subprocess.run([str(EXECUTABLE), "--help"], capture_output=True, text=True, check=True).stdout
    commands = shown.split("Commands:")[1].split()
    for command in ("serve", "check", "operators", "keys", "import"):
        assert command in commands


def test_check_reports_the_deployment(config_path, settings):
    """Three operators, two licensees: advisories, community and one reports collection each."""
    result = cli(config_path, "check")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (f"ok: 3 operators (2 licensees), 4 collections, store {settings.storage_url}")


@pytest.mark.parametrize("overrides, where, why", [
    ({"paging": {"default_limit": 0}}, "paging/default_limit", "less than the minimum of 1"),
    ({"operators": [{"id": "regulator", "role": "administrator"}]}, "operators/0/role", "'administrator'"),
    ({"api_root": {"path": "api", "title": "Test root", "max_content_lenght": 65536}}, "api_root",
     "'max_content_lenght' was unexpected"),
    ({"storage": "taxii.sqlite3"}, "storage", "'taxii.sqlite3' does not match"),
])
def test_check_names_the_file_and_property_of_a_config_error(tmp_path, overrides, where, why):
    """config.yaml is validated against schemas/config.schema.json before anything runs."""
    config = write_config(tmp_path, **overrides)
    result = cli(config, "check")
    assert result.exit_code != 0
    assert f"{config}: {where}: " in result.stderr and why in result.stderr
    assert isinstance(result.exception, SystemExit)  # a clean exit, not an uncaught exception


@pytest.mark.parametrize("text, message", [
    ("id: [886accab\ntitle: broken\n", "not valid YAML"),
    (yaml.safe_dump({"id": str(uuid.uuid4()), "title": "Misspelt", "read": ["everybody"], "write": []}),
     "read/0: 'everybody' does not match"),
    (yaml.safe_dump({"id": "not-a-uuid", "title": "Bad id", "read": ["everyone"], "write": []}), "id: "),
])
def test_check_names_a_broken_collection_file(tmp_path, text, message):
    """Each collections/*.yaml is parsed and validated against schemas/collection.schema.json."""
    collections = tmp_path / "collections"
    shutil.copytree(REPO / "collections", collections)
    (collections / "zz-broken.yaml").write_text(text)
    result = cli(write_config(tmp_path, collections_dir=str(collections)), "check")
    assert result.exit_code != 0
    assert f"{collections / 'zz-broken.yaml'}: {message}" in result.stderr


# --- operators -----------------------------------------------------------------------------------

def test_operators_lists_each_operators_role_and_rights(config_path):
    result = cli(config_path, "operators")
    assert result.exit_code == 0, result.output
    assert rights_listing(result.stdout) == {
        "regulator": {"role": "regulator", "advisories": "read+write", "community": "read+write",
                      "northtel-reports": "read+write", "southwave-reports": "read+write"},
        "northtel": {"role": "licensee", "advisories": "read", "community": "read+write",
                     "northtel-reports": "read+write"},
        "southwave": {"role": "licensee", "advisories": "read", "community": "read+write",
                      "southwave-reports": "read+write"},
    }


# --- import --------------------------------------------------------------------------------------

def test_import_loads_a_bundle_that_operators_then_poll(tmp_path, config_path, as_operator):
    bundle = bundle_file(tmp_path, indicator(1), indicator(2), indicator(3))
    result = cli(config_path, "import", str(bundle), "--collection", "community")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == "3 stored, 0 already present, 0 rejected"

    page = as_operator("southwave").get(f"/collections/{COMMUNITY}/objects/").json()
    assert sorted(o["id"] for o in page["objects"]) == sorted(indicator(n)["id"] for n in (1, 2, 3))


def test_re_importing_the_same_bundle_changes_nothing(tmp_path, config_path, settings):
    bundle = bundle_file(tmp_path, indicator(1), indicator(2))
    assert cli(config_path, "import", str(bundle), "--collection", COMMUNITY).exit_code == 0
    again = cli(config_path, "import", str(bundle), "--collection", COMMUNITY)
    assert again.exit_code == 0, again.output
    assert again.stdout.strip().splitlines()[-1] == "0 stored, 2 already present, 0 rejected"
    assert len(stored_ids(settings.storage_url, COMMUNITY)) == 2


def test_import_reports_invalid_objects_and_exits_1(tmp_path, config_path, settings):
    """Invalid objects are listed on stderr; the valid ones are stored anyway."""
    broken = {**indicator(2), "pattern": "not a pattern"}
    changed = {**indicator(1), "name": "same id and version, other content"}
    cli(config_path, "import", str(bundle_file(tmp_path, indicator(1), name="first.json")), "--collection", "community")

    result = cli(config_path, "import", str(bundle_file(tmp_path, indicator(3), broken, changed)),
                 "--collection", "community")
    assert result.exit_code == 1
    assert result.stdout.strip().splitlines()[-1] == "1 stored, 0 already present, 2 rejected"
    rejected = [line for line in result.stderr.splitlines() if line.startswith("rejected ")]
    assert sorted(line.split()[1].rstrip(":") for line in rejected) == sorted([broken["id"], changed["id"]])
    assert sorted(stored_ids(settings.storage_url, COMMUNITY)) == sorted([indicator(1)["id"], indicator(3)["id"]])


@pytest.mark.parametrize("content, collection, message", [
    (b"{not json", "community", "not valid JSON"),
    (json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": []}).encode(), "community",
     "'objects' list"),
    (json.dumps(envelope(indicator(1))).encode(), "no-such-collection", "no collection 'no-such-collection'"),
])
def test_import_refuses_an_unusable_file_or_collection(tmp_path, config_path, settings, content, collection, message):
    source = tmp_path / "input.json"
    source.write_bytes(content)
    result = cli(config_path, "import", str(source), "--collection", collection)
    assert result.exit_code != 0
    assert message in result.stderr
    assert stored_ids(settings.storage_url, COMMUNITY) == []


# --- TAXII_STORAGE_URL ---------------------------------------------------------------------------

def test_taxii_storage_url_overrides_the_configured_store(tmp_path, config_path, settings):
    elsewhere = tmp_path / "elsewhere" / "x.db"
    elsewhere.parent.mkdir()
    url = f"sqlite:///{elsewhere}"  # an absolute path: sqlite:////...
    assert url.startswith("sqlite:////")

    check = cli(config_path, "check", env={"TAXII_STORAGE_URL": url})
    assert check.exit_code == 0 and check.stdout.strip().endswith(f"store {url}")
    imported = cli(config_path, "import", str(bundle_file(tmp_path, indicator(1))), "--collection", "community",
                   env={"TAXII_STORAGE_URL": url})
    assert imported.exit_code == 0, imported.output

    assert stored_ids(url, COMMUNITY) == [indicator(1)["id"]]
    assert stored_ids(settings.storage_url, COMMUNITY) == []


def test_an_unsupported_storage_url_is_refused_with_a_message_that_hides_the_password(config_path):
    result = cli(config_path, "check", env={"TAXII_STORAGE_URL": "redis://taxii:hunter2@localhost/0"})
    assert result.exit_code != 0
    assert "unsupported storage URL 'redis://taxii:***@localhost/0'" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout
    assert isinstance(result.exception, SystemExit)  # a clean exit, not an uncaught exception


def test_an_unreachable_mongodb_is_reported_with_a_message_that_hides_the_password(config_path):
    url = "mongodb://taxii:hunter2@127.0.0.1:1/taxii?serverSelectionTimeoutMS=300&connectTimeoutMS=300"
    result = cli(config_path, "check", env={"TAXII_STORAGE_URL": url})
    assert result.exit_code != 0
    assert "cannot use MongoDB at mongodb://taxii:***@127.0.0.1:1/taxii" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout
    assert isinstance(result.exception, SystemExit)


# --- keys ----------------------------------------------------------------------------------------

def test_keys_issue_prints_the_key_alone_on_the_last_line(config_path):
    result = cli(config_path, "keys", "issue", "northtel", "--label", "ci")
    assert result.exit_code == 0, result.output
    key = result.stdout.splitlines()[-1]
    assert KEY_PATTERN.match(key)
    listed = cli(config_path, "keys", "list", "--operator", "northtel").stdout
    assert KEY_PATTERN.match(key).group(1) in listed and key not in listed


def test_keys_issue_for_an_unknown_operator_fails(config_path):
    result = cli(config_path, "keys", "issue", "eastlink")
    assert result.exit_code != 0
    assert "no operator 'eastlink'" in result.stderr
    assert not KEY_PATTERN.search(result.stdout)


# --- serve, end to end ---------------------------------------------------------------------------

def wait_until_answering(process: subprocess.Popen, url: str, log: Path) -> None:
    """Poll until the server answers HTTP at all (401 counts), with a bounded number of tries."""
    for _ in range(300):
        if process.poll() is not None:
            pytest.fail(f"taxii-server serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            requests.get(url, timeout=2)
            return
        except requests.ConnectionError:
            time.sleep(0.05)
    pytest.fail(f"taxii-server serve never answered on {url}:\n{log.read_text()}")


def test_serve_runs_the_api_under_gunicorn(tmp_path, config_path):
    port, log = free_port(), tmp_path / "serve.log"
    base = f"http://127.0.0.1:{port}"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [str(EXECUTABLE), "serve", "--config", str(config_path), "--port", str(port), "--workers", "1"],
            stdout=output, stderr=subprocess.STDOUT, env=clean_environ())
    try:
        wait_until_answering(process, f"{base}/taxii2/", log)

        # A key issued while the server runs works at once: both share the store.
        key = cli(config_path, "keys", "issue", "northtel").stdout.splitlines()[-1]
        http = requests.Session()
        http.headers.update({"Accept": TAXII, "Authorization": f"Bearer {key}"})

        assert requests.get(f"{base}/taxii2/", headers={"Accept": TAXII}).status_code == 401
        found = http.get(f"{base}/taxii2/")
        assert found.status_code == 200
        assert found.headers["Content-Type"] == TAXII
        assert found.json()["api_roots"] == ["/api/"]

        objects_url = f"{base}/api/collections/{COMMUNITY}/objects/"
        added = http.post(objects_url, data=json.dumps(envelope(indicator(7))), headers={"Content-Type": TAXII})
        assert added.status_code == 202 and added.json()["success_count"] == 1
        assert http.get(f"{objects_url}{indicator(7)['id']}/").json()["objects"] == [indicator(7)]
    finally:
        process.terminate()
        process.wait(timeout=30)

    assert process.returncode == 0, log.read_text()
    served = log.read_text()
    assert "GET /taxii2/" in served  # the access log is on
    assert key not in served  # ...and never records credentials


# --- the WSGI entry point ------------------------------------------------------------------------

WSGI_PROBE = """
import sys
from taxii_server.wsgi import app
answer = app.test_client().get("/taxii2/", headers={"Authorization": "Bearer " + sys.argv[1], "Accept": "*/*"})
print(answer.status_code, answer.get_json()["title"])
"""


def test_the_wsgi_app_reads_the_config_named_by_taxii_config(tmp_path, config_path, keys):
    """`gunicorn taxii_server.wsgi:app` with TAXII_CONFIG: the module builds the configured app."""
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    probe = subprocess.run([sys.executable, "-c", WSGI_PROBE, keys["regulator"]], cwd=elsewhere,
                           capture_output=True, text=True, env=clean_environ(TAXII_CONFIG=str(config_path)))
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "200 Test exchange"


def test_the_wsgi_app_without_a_config_fails_with_the_missing_file(tmp_path):
    probe = subprocess.run([sys.executable, "-c", "import taxii_server.wsgi"], cwd=tmp_path,
                           capture_output=True, text=True, env=clean_environ())
    assert probe.returncode != 0
    assert "config.yaml: no such file" in probe.stderr
