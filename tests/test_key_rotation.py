"""Key rotation: a new key at once, the old ones for a grace period, then never."""

import pytest
from click.testing import CliRunner

from conftest import COMMUNITY, TaxiiSession
from taxii_server.cli import main
from taxii_server.keys import issue_key, rotate_keys, verify_key
from taxii_server.timestamps import now_micros


# Every case runs once per storage backend.
pytestmark = pytest.mark.every_backend

HOUR = 3600 * 1_000_000


def test_rotation_issues_a_new_key_and_sets_the_old_ones_to_expire_after_the_grace_period(settings, store):
    old = issue_key(store, settings.secret, "northtel")
    rotation = rotate_keys(store, settings.secret, "northtel", grace=HOUR)

    assert rotation.retired_key_ids == [old.record.key_id]
    assert store.get_key(old.record.key_id).expires == rotation.retire_at
    now = now_micros()
    assert verify_key(store, settings.secret, old.raw_key, now) is not None, "still valid during the grace period"
    assert verify_key(store, settings.secret, old.raw_key, rotation.retire_at) is None, "refused once it ends"
    assert verify_key(store, settings.secret, rotation.issued.raw_key, rotation.retire_at) is not None


def test_rotation_leaves_other_operators_and_revoked_or_sooner_expiring_keys_alone(settings, store):
    other = issue_key(store, settings.secret, "southwave")
    soon = issue_key(store, settings.secret, "northtel", expires=now_micros() + 60_000_000)
    revoked = issue_key(store, settings.secret, "northtel")
    store.revoke_key(revoked.record.key_id, now_micros())

    rotation = rotate_keys(store, settings.secret, "northtel", grace=HOUR)

    assert rotation.retired_key_ids == []
    assert store.get_key(other.record.key_id).expires is None
    assert store.get_key(soon.record.key_id).expires == soon.record.expires


def test_rotation_can_retire_a_single_key(settings, store):
    first = issue_key(store, settings.secret, "northtel")
    second = issue_key(store, settings.secret, "northtel")
    rotation = rotate_keys(store, settings.secret, "northtel", grace=HOUR, key_id=first.record.key_id)
    assert rotation.retired_key_ids == [first.record.key_id]
    assert store.get_key(second.record.key_id).expires is None


def test_keys_rotate_command_prints_the_new_key_last_and_a_zero_grace_retires_the_old_key_at_once(
        server, settings, store, config_path):
    old = issue_key(store, settings.secret, "northtel").raw_key
    session = TaxiiSession(server.url, old)
    assert session.get(f"/collections/{COMMUNITY}/objects/").status_code == 200

    result = CliRunner().invoke(main, ["keys", "rotate", "northtel", "--grace", "0s", "--config", str(config_path)])

    assert result.exit_code == 0, result.output
    new = result.stdout.strip().splitlines()[-1]
    assert new.startswith("tx_") and new != old
    assert session.get(f"/collections/{COMMUNITY}/objects/").status_code == 401
    assert TaxiiSession(server.url, new).get(f"/collections/{COMMUNITY}/objects/").status_code == 200


def test_keys_rotate_refuses_a_key_of_another_operator(settings, store, config_path):
    other = issue_key(store, settings.secret, "southwave")
    result = CliRunner().invoke(main, ["keys", "rotate", "northtel", "--key", other.record.key_id,
                                       "--config", str(config_path)])
    assert result.exit_code != 0
    assert store.get_key(other.record.key_id).expires is None
