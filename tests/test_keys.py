"""API keys from issue to revocation: the schemes that carry them, the
answers to bad credentials, and what is (not) kept of them.

architecture.md, "API keys": `tx_<key id>_<secret>`, looked up by key id and
verified against an HMAC under the server secret; several keys per operator;
revocation takes effect on the next request. TAXII 2.1 §1.6.9 and §3.6.1: a
401 carries WWW-Authenticate and a TAXII error resource.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from backends import require_shared_store, require_sqlite
from conftest import COMMUNITY, OPERATORS, TAXII, LiveServer, TaxiiSession, write_config
from taxii_server.app import create_app
from taxii_server.cli import main
from taxii_server.config import load_settings
from taxii_server.keys import issue_key
from taxii_server.storage import sqlite_path
from taxii_server.timestamps import now_micros


# Every case runs once per storage backend.
pytestmark = pytest.mark.every_backend

KEY_SHAPE = re.compile(r"^tx_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
# The CLI must not pick up a store or secret from the environment of whoever runs the tests.
CLEAN_ENV = {"TAXII_STORAGE_URL": None, "TAXII_SERVER_SECRET": None}


# -- helpers ---------------------------------------------------------------------

def cli(config_path: Path, *args: str, ok: bool = True):
    """Run `taxii-server <args> --config <config_path>` in process; stdout and stderr apart."""
    result = CliRunner(env=CLEAN_ENV).invoke(main, [*args, "--config", str(config_path)])
    if ok:
        assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result


def cli_issue(config_path: Path, operator: str, *options: str) -> str:
    result = cli(config_path, "keys", "issue", operator, *options)
    return result.stdout.splitlines()[-1]


def key_id(raw_key: str) -> str:
    return KEY_SHAPE.match(raw_key).group(1)


def secret_part(raw_key: str) -> str:
    return KEY_SHAPE.match(raw_key).group(2)


def status_with(server, authorization: str | None = None, path: str = "/api/collections/") -> int:
    headers = {"Accept": TAXII}
    if authorization is not None:
        headers["Authorization"] = authorization
    return requests.get(server.url + path, headers=headers).status_code


def bearer(raw_key: str) -> str:
    return f"Bearer {raw_key}"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def keys_list_rows(config_path: Path, *options: str) -> dict[str, list[str]]:
    """`keys list` output as {key id: [key id, operator, created, expires, last used, state, ...]}."""
    lines = cli(config_path, "keys", "list", *options).stdout.splitlines()
    assert lines[0].split()[:7] == ["KEY", "ID", "OPERATOR", "CREATED", "EXPIRES", "LAST", "USED"]
    return {line.split()[0]: line.split() for line in lines[1:] if line.strip()}


# -- issuing ---------------------------------------------------------------------

def test_an_issued_key_has_the_documented_shape_and_identifies_its_operator(server, settings, store):
    issued = issue_key(store, settings.secret, "northtel", label="sentinel prod")
    assert KEY_SHAPE.match(issued.raw_key)
    assert issued.record.key_id == key_id(issued.raw_key)
    record = store.get_key(issued.record.key_id)
    assert (record.operator_id, record.label, record.revoked, record.expires) == ("northtel", "sentinel prod", None, None)

    listing = TaxiiSession(server.url, issued.raw_key).get("/collections/")
    assert listing.status_code == 200
    aliases = {c.get("alias") for c in listing.json()["collections"]}
    assert "northtel-reports" in aliases and "southwave-reports" not in aliases


def test_cli_issue_prints_the_key_alone_on_the_last_line_of_stdout(server, config_path, store):
    result = cli(config_path, "keys", "issue", "northtel", "--label", "soc")
    raw_key = result.stdout.splitlines()[-1]
    assert KEY_SHAPE.match(raw_key)
    assert raw_key not in result.stderr and key_id(raw_key) in result.stderr
    assert store.get_key(key_id(raw_key)).operator_id == "northtel"
    assert status_with(server, bearer(raw_key)) == 200


def test_the_installed_command_issues_a_working_key(server, config_path, storage_url):
    """The `taxii-server` entry point of the virtualenv, run as an operator would."""
    require_shared_store(storage_url)
    command = Path(sys.executable).with_name("taxii-server")
    environment = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
    finished = subprocess.run([str(command), "keys", "issue", "southwave", "--config", str(config_path)],
                              capture_output=True, text=True, env=environment, timeout=120)
    assert finished.returncode == 0, finished.stderr
    raw_key = finished.stdout.splitlines()[-1]
    assert KEY_SHAPE.match(raw_key)
    assert raw_key not in finished.stderr
    assert status_with(server, basic("southwave", raw_key)) == 200


def test_cli_refuses_to_issue_a_key_for_an_operator_not_in_the_configuration(config_path, store):
    result = cli(config_path, "keys", "issue", "eastlink", ok=False)
    assert result.exit_code != 0
    assert "eastlink" in result.stderr
    assert store.list_keys() == []


# -- schemes ---------------------------------------------------------------------

SCHEMES = {
    "Bearer": lambda operator, key: f"Bearer {key}",
    "Token": lambda operator, key: f"Token {key}",
    "Basic": lambda operator, key: basic(operator, key),
    "lower-case bearer": lambda operator, key: f"bearer {key}",  # RFC 9110 §11.1: schemes are case-insensitive
}


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("operator", ["regulator", "southwave"])
def test_a_key_is_accepted_with_every_supported_scheme(server, keys, scheme, operator):
    authorization = SCHEMES[scheme](operator, keys[operator])
    assert status_with(server, authorization, "/taxii2/") == 200
    listing = requests.get(f"{server.url}/api/collections/", headers={"Accept": TAXII, "Authorization": authorization})
    assert listing.status_code == 200
    # The key was taken for its own operator: southwave sees its reports, not northtel's.
    aliases = {c.get("alias") for c in listing.json()["collections"]}
    assert ("northtel-reports" in aliases) == (operator == "regulator")


@pytest.mark.parametrize("claimed", ["southwave", "regulator", "", "NorthTel"])
def test_basic_auth_with_another_operators_name_is_refused(server, keys, claimed):
    """The Basic user name must be the key's own operator: a licensee's key cannot claim the regulator."""
    response = requests.get(f"{server.url}/api/collections/",
                            headers={"Accept": TAXII, "Authorization": basic(claimed, keys["northtel"])})
    assert response.status_code == 401
    assert response.headers.get("WWW-Authenticate")


def _wrong_secret(key: str) -> str:
    secret = secret_part(key)
    return f"tx_{key_id(key)}_{('A' if secret[0] != 'A' else 'B') + secret[1:]}"


BAD_CREDENTIALS = {
    "missing header": lambda key: None,
    "empty header": lambda key: "",
    "scheme without credentials": lambda key: "Bearer",
    "key without scheme": lambda key: key,
    "unknown scheme": lambda key: f"Digest {key}",
    "basic not base64": lambda key: "Basic %%%not-base64%%%",
    "basic without colon": lambda key: "Basic " + base64.b64encode(key.encode()).decode(),
    "wrong secret": lambda key: bearer(_wrong_secret(key)),
    "unknown key id": lambda key: bearer(f"tx_{secrets.token_hex(6)}_{secret_part(key)}"),
    "key with extra text": lambda key: bearer(key + "x"),
    "garbage": lambda key: "Bearer \x01\x02 garbage ☠",
}
PROTECTED = ["/taxii2/", "/api/", "/api/collections/", f"/api/collections/{COMMUNITY}/objects/",
             f"/api/collections/{COMMUNITY}/manifest/", "/api/collections/no-such-collection/"]


@pytest.mark.parametrize("credentials", BAD_CREDENTIALS)
def test_bad_credentials_get_401_with_a_challenge_and_a_taxii_error(server, keys, credentials):
    """§1.6.9 / §3.6.1 on every URL, including one that does not exist."""
    authorization = BAD_CREDENTIALS[credentials](keys["northtel"])
    headers = {"Accept": TAXII}
    if authorization is not None:
        headers["Authorization"] = authorization.encode("utf-8").decode("latin-1")
    for path in PROTECTED:
        response = requests.get(server.url + path, headers=headers)
        assert response.status_code == 401, path
        assert "basic" in response.headers.get("WWW-Authenticate", "").lower(), path
        assert response.headers["Content-Type"] == TAXII, path
        assert response.json()["http_status"] == "401" and response.json()["title"], path
    refused_post = requests.post(f"{server.url}/api/collections/{COMMUNITY}/objects/", data=b'{"objects": []}',
                                 headers={**headers, "Content-Type": TAXII})
    assert refused_post.status_code == 401


# -- rotation, revocation, expiry ------------------------------------------------

def test_an_operator_can_hold_several_keys_and_retire_one_without_the_other(server, settings, store, keys):
    """Rotation: a new key works alongside the old one; revoking the old leaves the new working."""
    old, new = keys["northtel"], issue_key(store, settings.secret, "northtel").raw_key
    assert (status_with(server, bearer(old)), status_with(server, bearer(new))) == (200, 200)
    store.revoke_key(key_id(old), now_micros())
    assert (status_with(server, bearer(old)), status_with(server, bearer(new))) == (401, 200)


@pytest.mark.parametrize("via", ["cli", "store"])
def test_revocation_takes_effect_on_the_next_request_to_a_running_server(server, config_path, store, keys, via):
    raw_key = keys["southwave"]
    assert status_with(server, bearer(raw_key)) == 200
    if via == "cli":
        assert f"revoked {key_id(raw_key)}" in cli(config_path, "keys", "revoke", key_id(raw_key)).stdout
    else:
        assert store.revoke_key(key_id(raw_key), now_micros())
    assert status_with(server, bearer(raw_key)) == 401
    assert status_with(server, basic("southwave", raw_key)) == 401
    assert status_with(server, bearer(keys["northtel"])) == 200


def test_revoking_a_key_that_does_not_exist_is_an_error(config_path):
    result = cli(config_path, "keys", "revoke", "000000000000", ok=False)
    assert result.exit_code != 0


def test_a_key_that_expired_is_refused(server, settings, store):
    expired = issue_key(store, settings.secret, "northtel", expires=now_micros() - 1_000_000).raw_key
    assert status_with(server, bearer(expired)) == 401


def test_cli_issue_with_an_expiry_in_the_past_gives_a_key_that_is_refused(server, config_path):
    expired = cli_issue(config_path, "northtel", "--expires", "2020-01-01T00:00:00Z")
    valid = cli_issue(config_path, "northtel", "--expires", "90d")
    assert (status_with(server, bearer(expired)), status_with(server, bearer(valid))) == (401, 200)


def test_cli_expire_now_refuses_the_key_and_never_restores_it(server, config_path, keys):
    raw_key = keys["northtel"]
    assert status_with(server, bearer(raw_key)) == 200
    cli(config_path, "keys", "expire", key_id(raw_key), "--at", "0s")
    assert status_with(server, bearer(raw_key)) == 401
    assert keys_list_rows(config_path)[key_id(raw_key)][5] == "expired"
    cli(config_path, "keys", "expire", key_id(raw_key), "--never")
    assert status_with(server, bearer(raw_key)) == 200
    assert keys_list_rows(config_path)[key_id(raw_key)][3] == "-"


def test_cli_expire_needs_exactly_one_of_at_and_never(config_path, keys):
    assert cli(config_path, "keys", "expire", key_id(keys["northtel"]), ok=False).exit_code != 0
    both = cli(config_path, "keys", "expire", key_id(keys["northtel"]), "--at", "1d", "--never", ok=False)
    assert both.exit_code != 0


def test_keys_list_shows_id_operator_created_expires_and_last_used(server, config_path, store, settings):
    raw_key = cli_issue(config_path, "northtel", "--expires", "2099-01-31T00:00:00Z", "--label", "misp")
    other = issue_key(store, settings.secret, "southwave").raw_key

    before = keys_list_rows(config_path)
    assert set(before) == {key_id(raw_key), key_id(other)}
    kid, operator, created, expires, last_used, state, label = before[key_id(raw_key)]
    assert (kid, operator, last_used, state, label) == (key_id(raw_key), "northtel", "-", "active", "misp")
    assert TIMESTAMP.match(created)
    assert expires == "2099-01-31T00:00:00.000000Z"
    assert (before[key_id(other)][1], before[key_id(other)][4]) == ("southwave", "-")

    assert status_with(server, bearer(raw_key)) == 200
    after = keys_list_rows(config_path)
    assert TIMESTAMP.match(after[key_id(raw_key)][4])
    assert after[key_id(raw_key)][4] >= created
    assert after[key_id(other)][4] == "-"                      # only the key that was used
    assert set(keys_list_rows(config_path, "--operator", "southwave")) == {key_id(other)}


# -- what is kept of a key -------------------------------------------------------

def test_the_raw_key_is_nowhere_in_the_database_files(server, config_path, settings, store, keys):
    """Only the HMAC is stored: not in the database file, its WAL, or anything beside them."""
    require_sqlite(settings.storage_url, "searches the database files for the raw key")
    raw_keys = [*keys.values(), cli_issue(config_path, "northtel")]
    for raw_key in raw_keys:
        assert status_with(server, bearer(raw_key)) == 200
    store.revoke_key(key_id(raw_keys[0]), now_micros())
    cli(config_path, "keys", "expire", key_id(raw_keys[1]), "--at", "1d")

    folder = Path(sqlite_path(settings.storage_url)).parent
    stored = b"".join(path.read_bytes() for path in folder.rglob("*") if path.is_file())
    for raw_key in raw_keys:
        assert raw_key.encode() not in stored
        assert secret_part(raw_key).encode() not in stored
        # The search can find what is there: the key id and its hash are stored.
        assert key_id(raw_key).encode() in stored
        assert store.get_key(key_id(raw_key)).secret_hash.encode() in stored


def test_the_stored_hash_is_an_hmac_under_the_server_secret_not_a_plain_sha256(config_path, store, keys):
    raw_key = keys["northtel"]
    stored_hash = store.get_key(key_id(raw_key)).secret_hash
    assert stored_hash != hashlib.sha256(raw_key.encode()).hexdigest()
    assert stored_hash != hashlib.sha256(secret_part(raw_key).encode()).hexdigest()
    server_secret = (config_path.parent / "server.secret").read_text().strip().encode()
    assert stored_hash == hmac.new(server_secret, raw_key.encode(), hashlib.sha256).hexdigest()


def test_the_raw_key_is_never_logged_nor_echoed_on_stderr(server, config_path, store, keys, caplog):
    caplog.set_level(logging.DEBUG)
    raw_key = keys["northtel"]
    other = cli(config_path, "keys", "issue", "southwave")
    listed = cli(config_path, "keys", "list")
    for authorization in (bearer(raw_key), basic("northtel", raw_key), basic("regulator", raw_key),
                          bearer(_wrong_secret(raw_key)), f"Token {raw_key}x"):
        status_with(server, authorization)
    store.revoke_key(key_id(raw_key), now_micros())
    assert status_with(server, f"Token {raw_key}") == 401
    revoked = cli(config_path, "keys", "revoke", key_id(raw_key))

    logged = caplog.text + "".join(repr(record.args) for record in caplog.records)
    # The failures were logged, by key id only.
    assert any("authentication failed" in r.getMessage() and key_id(raw_key) in r.getMessage()
               for r in caplog.records)
    for secret in (raw_key, secret_part(raw_key)):
        assert secret not in logged
        assert secret not in other.stderr + listed.stdout + listed.stderr + revoked.stdout + revoked.stderr
    southwave_key = other.stdout.splitlines()[-1]
    assert secret_part(southwave_key) not in other.stderr + listed.stdout + logged


def test_a_key_of_an_operator_removed_from_the_configuration_is_refused(tmp_path, store, keys):
    """Removing an operator from config.yaml retires its keys, even though their records remain."""
    remaining = [op for op in OPERATORS if op["id"] != "southwave"]
    settings = load_settings(write_config(tmp_path, operators=remaining), environ={})
    assert store.get_key(key_id(keys["southwave"])) is not None
    live = LiveServer(create_app(settings, store))
    try:
        assert status_with(live, bearer(keys["southwave"])) == 401
        assert status_with(live, basic("southwave", keys["southwave"])) == 401
        assert status_with(live, bearer(keys["northtel"])) == 200
    finally:
        live.stop()
