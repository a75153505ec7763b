"""The regulator republishing a licensee's report, and provenance.

Over HTTP (POST /api/sharing/publish/, GET /api/sharing/provenance/<id>/, the
regulator's keys only) and from the command line (`taxii-server publish`,
`taxii-server provenance`). A republished report reaches the other licensees
as the regulator's own object, with nothing that names the reporter and no
personal data; TLP:RED and TLP:AMBER+STRICT sources are refused.
"""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from conftest import envelope, indicator
from sharing_support import TLP2, config_with_contacts, status_details
from taxii_server.cli import main
from taxii_server.keys import key_id_of
from taxii_server.sharing.identities import identity_of

pytestmark = pytest.mark.every_backend

PERSONAL_DATA = ["victim.name@example.org", "+44 7700 900123", "07700 900123", "020 7946 0000", "447700900123",
                 "234150999999999", "490154203237518", "49-015420-323751-8", "+1 (202) 555-0143"]
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def config_path(tmp_path, storage_url):
    return config_with_contacts(tmp_path, storage_url)


def licensee_report(settings, n: int = 1, level: str | None = "amber") -> dict:
    northtel = settings.operators["northtel"]
    return indicator(
        n, created_by_ref=identity_of(northtel),
        **({"object_marking_refs": [TLP2[level]]} if level else {}),
        name="SMS phishing sender seen by NorthTel",
        description=("Customer victim.name@example.org (MSISDN 447700900123, IMSI 234150999999999, "
                     "IMEI 490154203237518 / 49-015420-323751-8) was called from +44 7700 900123 and "
                     "07700 900123, then from 020 7946 0000 and +1 (202) 555-0143. Contact soc@northtel.example."),
        pattern="[domain-name:value = 'parcel-fee.example']")


def publish(session, object_id: str, source: str = "northtel-reports", target: str = "advisories"):
    return session.post("/sharing/publish/", json.dumps({"object_id": object_id, "from": source, "to": target}),
                        headers=JSON)


def test_a_republished_report_is_the_regulators_and_names_nobody(settings, keys, regulator, northtel, southwave):
    source = licensee_report(settings)
    assert northtel.post("/collections/northtel-reports/objects/", envelope(source)).json()["success_count"] == 1

    response = publish(regulator, source["id"])
    assert response.status_code == 201
    new_id = response.json()["id"]
    assert new_id != source["id"] and new_id.startswith("indicator--")

    read = [southwave.get("/collections/advisories/objects/"), southwave.get("/collections/advisories/manifest/"),
            southwave.get(f"/collections/advisories/objects/{new_id}/versions/")]
    publisher, advisory = read[0].json()["objects"]  # the regulator's identity comes first, for tools resolving it
    assert (publisher["id"], publisher["name"]) == (identity_of(settings.operators["regulator"]), "Regulator CERT")
    assert advisory["id"] == new_id
    assert advisory["created_by_ref"] == publisher["id"]
    assert advisory["pattern"] == source["pattern"]
    assert advisory["object_marking_refs"] == [TLP2["amber"]]
    blob = b"\n".join(page.content for page in read).decode()
    reporter = settings.operators["northtel"]
    for trace in [source["id"], reporter.id, reporter.name, *reporter.emails, identity_of(reporter),
                  key_id_of(keys["northtel"]), *PERSONAL_DATA]:
        assert not re.search(re.escape(trace), blob, re.IGNORECASE), f"SouthWave can read {trace!r}"
    assert northtel.get(f"/collections/northtel-reports/objects/{source['id']}/").status_code == 200


def test_provenance_links_the_report_and_its_republication_for_the_regulator(settings, keys, regulator, northtel):
    source = licensee_report(settings)
    northtel.post("/collections/northtel-reports/objects/", envelope(source))
    new_id = publish(regulator, source["id"]).json()["id"]

    origin = regulator.get(f"/sharing/provenance/{source['id']}/").json()
    assert [(v["collection"], v["submitter"], v["key_id"]) for v in origin["versions"]] == \
        [("northtel-reports", "northtel", key_id_of(keys["northtel"]))]
    assert [(r["collection"], r["object_id"]) for r in origin["republished_as"]] == [("advisories", new_id)]

    derived = regulator.get(f"/sharing/provenance/{new_id}/").json()
    (version,) = derived["versions"]
    assert version["submitter"] == "regulator" and version["key_id"] == key_id_of(keys["regulator"])
    assert version["derived_from"].endswith(f"/{source['id']}/{source['modified']}")


@pytest.mark.parametrize("level", ["red", "amber+strict"])
def test_red_and_amber_strict_sources_are_refused_with_the_reason(settings, regulator, northtel, southwave, level):
    source = licensee_report(settings, level=level)
    northtel.post("/collections/northtel-reports/objects/", envelope(source))
    response = publish(regulator, source["id"])
    assert response.status_code == 422
    assert f"TLP:{level.upper()}" in response.json()["description"]
    assert "more" in southwave.get("/collections/advisories/objects/").json()
    assert "objects" not in southwave.get("/collections/advisories/objects/").json()


def test_an_unmarked_source_keeps_the_level_it_counted_as(settings, regulator, northtel, southwave):
    source = licensee_report(settings, level=None)
    northtel.post("/collections/northtel-reports/objects/", envelope(source))
    new_id = publish(regulator, source["id"]).json()["id"]
    (advisory,) = southwave.get(f"/collections/advisories/objects/{new_id}/").json()["objects"]
    assert advisory["object_marking_refs"] == [TLP2["amber"]]  # unmarked counts as TLP:AMBER in reports


def test_republishing_again_adds_a_version_of_the_same_advisory(settings, regulator, northtel):
    source = licensee_report(settings)
    northtel.post("/collections/northtel-reports/objects/", envelope(source))
    first = publish(regulator, source["id"]).json()
    northtel.post("/collections/northtel-reports/objects/",
                  envelope({**source, "modified": "2026-03-01T00:00:00.000Z", "name": "second sighting"}))
    second = publish(regulator, source["id"]).json()
    assert second["id"] == first["id"] and second["version"] > first["version"]
    versions = regulator.get(f"/collections/advisories/objects/{first['id']}/versions/").json()["versions"]
    assert versions == [first["version"], second["version"]]


def test_licensees_cannot_tell_the_sharing_actions_exist(settings, northtel, southwave, regulator):
    source = licensee_report(settings)
    northtel.post("/collections/northtel-reports/objects/", envelope(source))
    unknown = southwave.post("/sharing/no-such-action/", "{}", headers=JSON)
    for licensee in (northtel, southwave):
        for response in (publish(licensee, source["id"]),
                         licensee.get(f"/sharing/provenance/{source['id']}/")):
            assert (response.status_code, response.content) == (unknown.status_code, unknown.content) == (404, unknown.content)
    assert "objects" not in regulator.get("/collections/advisories/objects/").json()


def test_bad_publish_requests_get_taxii_errors(settings, regulator):
    assert publish(regulator, "indicator--00000000-0000-4000-8000-00000000ffff").status_code == 422
    assert publish(regulator, "indicator--00000000-0000-4000-8000-00000000ffff", target="nowhere").status_code == 400
    assert regulator.post("/sharing/publish/", "[1, 2", headers=JSON).status_code == 422
    assert regulator.post("/sharing/publish/", json.dumps({"object_id": 5}), headers=JSON).status_code == 422
    assert regulator.post("/sharing/publish/", "{}", headers={"Content-Type": "text/plain"}).status_code == 415


def cli(config_path, *args):
    return CliRunner().invoke(main, [*args, "--config", str(config_path)], env={"TAXII_STORAGE_URL": "",
                                                                                 "TAXII_SERVER_SECRET": ""})


def test_the_commands_publish_and_show_provenance(settings, keys, config_path, northtel, southwave):
    source = licensee_report(settings)
    northtel.post("/collections/northtel-reports/objects/", envelope(source))

    published = cli(config_path, "publish", source["id"], "--from", "northtel-reports", "--to", "community")
    assert published.exit_code == 0, published.output
    new_id = published.stdout.strip().splitlines()[-1]
    assert new_id.startswith("indicator--")
    (advisory,) = southwave.get(f"/collections/community/objects/{new_id}/").json()["objects"]
    assert advisory["created_by_ref"] == identity_of(settings.operators["regulator"])

    shown = cli(config_path, "provenance", source["id"])
    assert shown.exit_code == 0, shown.output
    assert "northtel-reports" in shown.output and key_id_of(keys["northtel"]) in shown.output
    assert f"republished as {new_id} in community" in shown.output
    shown = cli(config_path, "provenance", new_id, "--collection", "community", "--json")
    (version,) = json.loads(shown.stdout)["versions"]
    assert (version["submitter"], version["key_id"]) == ("regulator", "cli")

    refused = cli(config_path, "publish", source["id"], "--from", "northtel-reports", "--to", "nowhere")
    assert refused.exit_code != 0 and "no collection 'nowhere'" in refused.output


def test_operators_json_gives_each_operators_identity(settings, config_path):
    listed = json.loads(cli(config_path, "operators", "--json").stdout)
    assert [(o["id"], o["role"], o["identity"]) for o in listed] == \
        [(op.id, op.role, identity_of(op)) for op in settings.operators.values()]
    assert len({o["identity"] for o in listed}) == len(listed)
