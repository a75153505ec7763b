"""Objects belong to their first writer; versions from the future are refused (over HTTP).

The attack: the regulator posts indicator X to community; a licensee posts X
again with `modified: 9999-12-31T23:59:59.999Z, revoked: true`, so that every
reader gets the hijacked version and the regulator's later fix never becomes
the latest. Now a new version of an object is accepted only from the operator
that stored its first version in that collection, and a `modified` more than
`sharing.max_future_skew_seconds` ahead of the server's clock is refused. The
refusal names no owner.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from conftest import envelope, indicator
from sharing_support import status_details

pytestmark = pytest.mark.every_backend

X = indicator(7, modified="2026-01-01T00:00:00.000Z")
HIJACK = {**X, "modified": "9999-12-31T23:59:59.999Z", "revoked": True}


def stamp(delta: timedelta) -> str:
    return (datetime.now(timezone.utc) + delta).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def latest(session, alias: str, object_id: str) -> dict:
    (obj,) = session.get(f"/collections/{alias}/objects/{object_id}/").json()["objects"]
    return obj


def test_the_reported_hijack_is_refused_and_the_regulators_fix_becomes_latest(regulator, northtel, southwave):
    assert regulator.post("/collections/community/objects/", envelope(X)).json()["success_count"] == 1

    successes, failures = status_details(northtel.post("/collections/community/objects/", envelope(HIJACK)))
    assert not successes and failures[0]["id"] == X["id"]
    assert "revoked" not in latest(southwave, "community", X["id"])

    fix = {**X, "modified": stamp(timedelta(seconds=-1)), "name": "corrected"}
    assert regulator.post("/collections/community/objects/", envelope(fix)).json()["success_count"] == 1
    assert latest(southwave, "community", X["id"])["name"] == "corrected"
    versions = southwave.get(f"/collections/community/objects/{X['id']}/versions/").json()["versions"]
    assert versions == [X["modified"], fix["modified"]]


def test_a_version_from_another_operator_is_refused_without_naming_the_owner(regulator, northtel):
    regulator.post("/collections/community/objects/", envelope(X))
    plausible = {**X, "modified": "2026-06-01T00:00:00.000Z", "revoked": True}
    successes, failures = status_details(northtel.post("/collections/community/objects/", envelope(plausible)))
    assert not successes
    message = failures[0]["message"]
    assert "another operator" in message
    for owner_trace in ("regulator", "Regulator", "identity--"):
        assert owner_trace not in message


def test_the_refusal_reads_the_same_whoever_owns_the_object(regulator, northtel, southwave):
    """In the anonymous community, what a refused licensee reads must not tell the
    regulator's objects from another licensee's."""
    owned_by_regulator, owned_by_northtel = indicator(1), indicator(2)
    regulator.post("/collections/community/objects/", envelope(owned_by_regulator))
    northtel.post("/collections/community/objects/", envelope(owned_by_northtel))
    later = "2026-03-01T00:00:00.000Z"
    messages = []
    for target in (owned_by_regulator, owned_by_northtel):
        _, failures = status_details(southwave.post("/collections/community/objects/",
                                                     envelope({**target, "modified": later})))
        messages.append(failures[0]["message"])
    assert messages[0] == messages[1]


def test_the_owner_keeps_versioning_its_own_object(northtel, southwave):
    assert northtel.post("/collections/community/objects/", envelope(X)).json()["success_count"] == 1
    v2 = {**X, "modified": "2026-02-01T00:00:00.000Z", "name": "v2"}
    assert northtel.post("/collections/community/objects/", envelope(v2)).json()["success_count"] == 1
    assert latest(southwave, "community", X["id"])["name"] == "v2"


def test_an_exact_duplicate_from_another_operator_is_still_a_success_and_changes_nothing(regulator, northtel):
    regulator.post("/collections/community/objects/", envelope(X))
    successes, failures = status_details(northtel.post("/collections/community/objects/", envelope(X)))
    assert not failures and successes[0]["message"] == "already stored (exact duplicate)"


def test_ownership_holds_in_a_licensees_private_collection(regulator, northtel):
    """The regulator's directed alert stays the regulator's, even in the licensee's own collection."""
    regulator.post("/collections/northtel-reports/objects/", envelope(X))
    _, failures = status_details(northtel.post("/collections/northtel-reports/objects/",
                                               envelope({**X, "modified": "2026-02-01T00:00:00.000Z"})))
    assert failures and "another operator" in failures[0]["message"]


def test_ownership_is_per_collection(regulator, northtel):
    regulator.post("/collections/community/objects/", envelope(X))
    successes, _ = status_details(northtel.post("/collections/northtel-reports/objects/",
                                                envelope({**X, "modified": "2026-02-01T00:00:00.000Z"})))
    assert len(successes) == 1


def test_the_owners_own_version_from_the_future_is_refused_too(regulator, northtel):
    regulator.post("/collections/advisories/objects/", envelope(X))
    _, failures = status_details(regulator.post("/collections/advisories/objects/", envelope(HIJACK)))
    assert "ahead of the server's clock" in failures[0]["message"]
    _, failures = status_details(northtel.post("/collections/northtel-reports/objects/",
                                               envelope(indicator(3, modified=stamp(timedelta(hours=1))))))
    assert "ahead of the server's clock" in failures[0]["message"]


def test_a_version_within_the_allowed_skew_is_accepted(northtel):
    ahead = indicator(3, modified=stamp(timedelta(seconds=60)))
    successes, failures = status_details(northtel.post("/collections/northtel-reports/objects/", envelope(ahead)))
    assert len(successes) == 1 and not failures


def test_no_operator_creates_objects_in_anothers_name(settings, northtel, southwave):
    from taxii_server.sharing.identities import identity_of
    framed = indicator(4, created_by_ref=identity_of(settings.operators["northtel"]))
    _, failures = status_details(southwave.post("/collections/community/objects/", envelope(framed)))
    assert "another operator's identity" in failures[0]["message"]
    own = indicator(5, created_by_ref=identity_of(settings.operators["southwave"]))
    successes, _ = status_details(southwave.post("/collections/southwave-reports/objects/", envelope(own)))
    assert len(successes) == 1


def test_no_operator_publishes_anothers_identity_object(settings, northtel, southwave):
    from sharing_support import identity
    from taxii_server.sharing.identities import identity_of
    northtels = identity(identity_of(settings.operators["northtel"]), "NorthTel")
    for alias in ("community", "southwave-reports"):
        _, failures = status_details(southwave.post(f"/collections/{alias}/objects/", envelope(northtels)))
        assert "another operator's identity" in failures[0]["message"]
    successes, _ = status_details(northtel.post("/collections/northtel-reports/objects/", envelope(northtels)))
    assert len(successes) == 1
