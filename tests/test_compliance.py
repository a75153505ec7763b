"""Compliance records over real HTTP: what each licensee was sent, what it
acknowledged, what it sighted, and who may see any of it.

Licensees poll and post with requests and taxii2-client against the server on
a loopback socket; the regulator reads the reports over HTTP and with
`taxii-server report`. Every case runs on every storage backend.
"""

from __future__ import annotations

import csv
import io
import json
import threading
import uuid

import pytest
import stix2
from click.testing import CliRunner
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from taxii2client.v21 import Collection, as_pages

from backends import require_shared_store
from conftest import ADVISORIES, COMMUNITY, TaxiiSession, envelope, indicator
from test_crash_safety import TaxiiServerProcess
from taxii_server.cli import main
from taxii_server.storage.base import DeliveredPage, Poll
from taxii_server.timestamps import now_micros

pytestmark = pytest.mark.every_backend

REGULATOR_IDENTITY = "identity--00000000-0000-4000-8000-0000000000aa"
NORTHTEL_IDENTITY = "identity--00000000-0000-4000-8000-0000000000bb"
REPORTS = ("deliveries/", "deliveries/summary/", "licensees/", "sightings/", "acknowledgements/")


# --- helpers --------------------------------------------------------------------------------------

def advisory(n: int, modified: str = "2026-01-01T00:00:00.000Z") -> dict:
    return indicator(n, modified=modified, created_by_ref=REGULATOR_IDENTITY)


def stix_id(kind: str) -> str:
    return f"{kind}--{uuid.uuid4()}"


def opinion(refs: list[str], value: str = "agree", **extra) -> dict:
    return {"type": "opinion", "spec_version": "2.1", "id": stix_id("opinion"), "created": "2026-02-01T00:00:00.000Z",
            "modified": "2026-02-01T00:00:00.000Z", "opinion": value, "object_refs": refs, **extra}


def note(refs: list[str], **extra) -> dict:
    return {"type": "note", "spec_version": "2.1", "id": stix_id("note"), "created": "2026-02-01T00:00:00.000Z",
            "modified": "2026-02-01T00:00:00.000Z", "content": "Read and acted on.", "object_refs": refs, **extra}


def sighting(indicator_id: str, count: int, first: str, last: str, modified: str = "2026-02-01T00:00:00.000Z",
             sighting_id: str | None = None) -> dict:
    return {"type": "sighting", "spec_version": "2.1", "id": sighting_id or stix_id("sighting"),
            "created": "2026-02-01T00:00:00.000Z", "modified": modified, "sighting_of_ref": indicator_id,
            "count": count, "first_seen": first, "last_seen": last}


def private(settings, licensee: str) -> str:
    return settings.collection(f"{licensee}-reports").id


def publish(session, collection_id: str, *objects: dict) -> None:
    answer = session.post(f"/collections/{collection_id}/objects/", envelope(*objects))
    assert answer.status_code == 202 and answer.json()["failure_count"] == 0, answer.text


def received(answer) -> set[tuple[str, str]]:
    """The (id, version) pairs a response of GET objects or GET object carried."""
    assert answer.status_code == 200, answer.text
    return {(obj["id"], obj["modified"]) for obj in answer.json().get("objects", [])}


def poll_all(session, path: str, params: dict) -> set[tuple[str, str]]:
    """Every page of a listing, following `next`."""
    got, params = set(), dict(params)
    while True:
        answer = session.get(path, params=params)
        got |= received(answer)
        body = answer.json()
        if not body["more"]:
            return got
        params = {**params, "next": body["next"]}


def report(regulator, name: str, **params) -> dict:
    answer = regulator.get(f"/compliance/{name}", params=params)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"] == "application/json"
    return answer.json()


def delivered_to(regulator, operator: str, collection: str | None = None) -> set[tuple[str, str]]:
    params = {"collection": collection} if collection else {}
    rows, after = [], None
    while True:
        page = report(regulator, "deliveries/", limit=3, **params, **({"next": after} if after else {}))
        rows += page["deliveries"]
        if not page["more"]:
            break
        after = page["next"]
    keys = [(row["collection"], row["object_id"], row["version"], row["operator"]) for row in rows]
    assert len(keys) == len(set(keys)), "a delivery was recorded twice"
    return {(row["object_id"], row["version"]) for row in rows if row["operator"] == operator}


def acknowledgements(regulator) -> dict[tuple[str, str], dict]:
    return {(row["operator"], row["object_id"]): row for row in report(regulator, "acknowledgements/")["acknowledgements"]}


def cli(config_path, *args: str):
    result = CliRunner().invoke(main, [*args, "--config", str(config_path)],
                                env={"TAXII_STORAGE_URL": None, "TAXII_SERVER_SECRET": None, "TAXII_CONFIG": None})
    assert result.exit_code == 0, result.output
    return result.output


def client_collection(server, keys, operator: str, collection_id: str) -> Collection:
    return Collection(f"{server.url}/api/collections/{collection_id}/", user=operator, password=keys[operator])


@pytest.fixture
def advisories(regulator):
    """Five advisories (indicators); the third has a second version."""
    publish(regulator, ADVISORIES, *(advisory(n) for n in range(5)))
    publish(regulator, ADVISORIES, advisory(2, modified="2026-03-01T00:00:00.000Z"))
    return [advisory(n)["id"] for n in range(5)]


# --- deliveries: exactly what each response carried ---------------------------------------------

OBJECTS = f"/collections/{ADVISORIES}/objects/"


@pytest.mark.parametrize("params", [
    {},
    {"match[type]": "indicator"},
    {"match[type]": "malware"},
    {"match[version]": "all"},
    {"match[version]": "first"},
    {"match[version]": "2026-03-01T00:00:00.000Z"},
    {"match[version]": "first,last"},
    {"match[spec_version]": "2.1"},
    {"limit": "2"},
    {"limit": "1", "match[version]": "all"},
], ids=lambda params: ",".join(f"{k}={v}" for k, v in params.items()) or "no-filter")
def test_a_poll_records_exactly_the_versions_it_sent(advisories, northtel, regulator, params):
    sent = poll_all(northtel, OBJECTS, params)
    assert delivered_to(regulator, "northtel") == sent
    assert delivered_to(regulator, "southwave") == set()


def test_match_id_and_added_after_narrow_what_is_recorded(advisories, northtel, regulator):
    sent = received(northtel.get(OBJECTS, params={"match[id]": f"{advisories[0]},{advisories[2]}"}))
    assert delivered_to(regulator, "northtel") == sent == {(advisories[0], "2026-01-01T00:00:00.000Z"),
                                                           (advisories[2], "2026-03-01T00:00:00.000Z")}
    first_two = northtel.get(OBJECTS, params={"limit": "2"})
    later = received(northtel.get(OBJECTS, params={"added_after": first_two.headers["X-TAXII-Date-Added-Last"]}))
    assert delivered_to(regulator, "northtel") == sent | received(first_two) | later


def test_get_object_and_get_versions_deliver(advisories, northtel, regulator):
    one = received(northtel.get(f"{OBJECTS}{advisories[2]}/", params={"match[version]": "first"}))
    assert one == {(advisories[2], "2026-01-01T00:00:00.000Z")}
    versions = northtel.get(f"{OBJECTS}{advisories[4]}/versions/")
    assert versions.json()["versions"] == ["2026-01-01T00:00:00.000Z"]
    assert delivered_to(regulator, "northtel") == one | {(advisories[4], "2026-01-01T00:00:00.000Z")}


def test_a_manifest_alone_delivers_nothing(advisories, northtel, regulator):
    assert northtel.get(f"/collections/{ADVISORIES}/manifest/").status_code == 200
    assert delivered_to(regulator, "northtel") == set()


def test_the_first_delivery_time_is_kept_and_the_regulators_reads_are_not_licensee_rows(advisories, northtel,
                                                                                         regulator):
    northtel.get(OBJECTS)
    first = {row["object_id"]: row["delivered_at"] for row in report(regulator, "deliveries/")["deliveries"]}
    northtel.get(OBJECTS)
    regulator.get(OBJECTS)
    again = report(regulator, "deliveries/")["deliveries"]
    assert {row["object_id"]: row["delivered_at"] for row in again} == first
    assert {row["operator"] for row in again} == {"northtel"}


def test_an_untracked_collection_records_nothing(northtel, regulator):
    publish(regulator, COMMUNITY, indicator(7))
    assert received(northtel.get(f"/collections/{COMMUNITY}/objects/"))
    assert report(regulator, "deliveries/")["deliveries"] == []


def test_directed_alerts_in_a_private_collection_are_deliveries_too(settings, northtel, regulator):
    reports = private(settings, "northtel")
    publish(regulator, reports, advisory(9))
    sent = received(northtel.get(f"/collections/{reports}/objects/"))
    assert delivered_to(regulator, "northtel", collection="northtel-reports") == sent


# --- acknowledgements -------------------------------------------------------------------------------

def test_an_opinion_posted_with_taxii2_client_acknowledges_what_was_delivered(
        settings, server, keys, advisories, northtel, regulator):
    northtel.get(OBJECTS, params={"match[id]": advisories[0]})
    reports = client_collection(server, keys, "northtel", private(settings, "northtel"))
    status = reports.add_objects({"objects": [opinion([advisories[0]], "strongly-agree")]})
    assert status.success_count == 1

    ack = acknowledgements(regulator)[("northtel", advisories[0])]
    assert (ack["status"], ack["value"]) == ("acknowledged", "strongly-agree")
    rows = {(r["object_id"], r["operator"]): r for r in report(regulator, "deliveries/")["deliveries"]}
    assert rows[(advisories[0], "northtel")]["acknowledged_at"] == ack["acknowledged_at"]
    summary = {r["object_id"]: r for r in report(regulator, "deliveries/summary/")["objects"]}
    assert (summary[advisories[0]]["licensees_delivered"], summary[advisories[0]]["licensees_acknowledged"]) == (1, 1)


def test_a_note_from_the_stix2_library_acknowledges_too(settings, server, keys, advisories, southwave, regulator):
    southwave.get(OBJECTS)
    target = client_collection(server, keys, "southwave", private(settings, "southwave"))
    stix2.TAXIICollectionSink(target).add(stix2.Note(content="Patched.", object_refs=[advisories[1], advisories[3]]))
    acks = acknowledgements(regulator)
    assert {acks[("southwave", a)]["status"] for a in (advisories[1], advisories[3])} == {"acknowledged"}
    assert acks[("southwave", advisories[1])]["value"] == "note"


def test_acknowledging_what_was_never_sent_or_cannot_be_read_is_recorded_as_such(
        settings, advisories, northtel, southwave, regulator):
    hidden = advisory(40)
    publish(southwave, private(settings, "southwave"), hidden)
    unknown = stix_id("indicator")
    publish(northtel, private(settings, "northtel"), opinion([advisories[3], hidden["id"], unknown]))

    acks = acknowledgements(regulator)
    assert acks[("northtel", advisories[3])]["status"] == "not-delivered"
    assert acks[("northtel", hidden["id"])]["status"] == "not-readable"
    assert acks[("northtel", unknown)]["status"] == "not-readable"
    assert all(row["acknowledged_at"] is None for row in report(regulator, "deliveries/")["deliveries"])


def test_a_later_version_needs_its_own_acknowledgement(settings, advisories, northtel, regulator):
    northtel.get(OBJECTS, params={"match[id]": advisories[0]})
    publish(northtel, private(settings, "northtel"), opinion([advisories[0]]))
    publish(regulator, ADVISORIES, advisory(0, modified="2026-04-01T00:00:00.000Z"))
    northtel.get(OBJECTS, params={"match[id]": advisories[0]})
    rows = {r["version"]: r for r in report(regulator, "deliveries/")["deliveries"] if r["object_id"] == advisories[0]}
    assert rows["2026-01-01T00:00:00.000Z"]["acknowledged_at"] is not None
    assert rows["2026-04-01T00:00:00.000Z"]["acknowledged_at"] is None
    licensee = {r["operator"]: r for r in report(regulator, "licensees/")["licensees"]}["northtel"]
    assert licensee["acknowledgements_pending"] == 1


def test_references_to_a_licensees_own_objects_and_the_publishers_own_notes_are_not_acknowledgements(
        settings, advisories, northtel, regulator):
    own = indicator(50)
    reports = private(settings, "northtel")
    publish(northtel, reports, own, note([own["id"]]))
    publish(regulator, reports, note([advisories[0]], created_by_ref=REGULATOR_IDENTITY))
    assert acknowledgements(regulator) == {}


# --- sightings and false positives --------------------------------------------------------------

def test_sightings_and_false_positives_are_aggregated_per_indicator(settings, server, keys, advisories, regulator):
    north = client_collection(server, keys, "northtel", private(settings, "northtel"))
    south = client_collection(server, keys, "southwave", private(settings, "southwave"))
    repeated = stix_id("sighting")
    north.add_objects({"objects": [sighting(advisories[0], 2, "2026-02-01T00:00:00Z", "2026-02-02T00:00:00Z",
                                            sighting_id=repeated)]})
    # A later version of the same sighting replaces the first: it is not a second sighting.
    north.add_objects({"objects": [sighting(advisories[0], 5, "2026-02-01T00:00:00Z", "2026-02-04T00:00:00Z",
                                            modified="2026-02-05T00:00:00.000Z", sighting_id=repeated)]})
    south.add_objects({"objects": [sighting(advisories[0], 1, "2026-01-20T00:00:00Z", "2026-01-21T00:00:00Z"),
                                   opinion([advisories[1]], "strongly-disagree"),
                                   opinion([advisories[0]], "agree")]})

    rows = {row["indicator_id"]: row for row in report(regulator, "sightings/")["indicators"]}
    assert rows[advisories[0]] == {"indicator_id": advisories[0], "operators": 2, "sightings": 6, "false_positives": 0,
                                   "first_seen": "2026-01-20T00:00:00.000000Z",
                                   "last_seen": "2026-02-04T00:00:00.000000Z"}
    assert (rows[advisories[1]]["operators"], rows[advisories[1]]["false_positives"]) == (0, 1)


# --- who may see the records --------------------------------------------------------------------

@pytest.mark.parametrize("path", REPORTS)
def test_licensees_never_see_a_byte_of_the_records(advisories, northtel, southwave, regulator, path):
    northtel.get(OBJECTS)
    nowhere = northtel.get("/compliance/no-such-report/")
    for licensee in (northtel, southwave):
        answer = licensee.get(f"/compliance/{path}")
        assert answer.status_code == 404
        assert answer.content == nowhere.content
        assert b"northtel" not in answer.content and b"southwave" not in answer.content
    assert regulator.get(f"/compliance/{path}").status_code == 200


def test_the_reports_need_a_key(server):
    import requests

    answer = requests.get(f"{server.url}/api/compliance/licensees/")
    assert answer.status_code == 401


@pytest.mark.parametrize("params", [{"since": "yesterday"}, {"limit": "0"}, {"limit": "10001"},
                                    {"next": "not-a-token"}, {"collection": "community"},
                                    {"collection": "no-such-collection"}])
def test_bad_report_parameters_get_400(regulator, params):
    answer = regulator.get("/compliance/deliveries/", params=params)
    assert answer.status_code == 400
    assert answer.json()["http_status"] == "400"


# --- licensees report, retention ------------------------------------------------------------------

def test_the_licensees_report_shows_polls_and_what_is_not_yet_delivered(advisories, northtel, regulator):
    northtel.get(OBJECTS, params={"limit": "2"})
    rows = {row["operator"]: row for row in report(regulator, "licensees/")["licensees"]}
    north, south = rows["northtel"], rows["southwave"]
    assert north["undelivered"] == 3 and south["undelivered"] == 5
    assert north["last_polls"]["advisories"] is not None and south["last_polls"]["advisories"] is None
    assert north["last_request"] is not None
    assert south["oldest_undelivered"] <= north["oldest_undelivered"]


def test_records_past_the_retention_period_are_purged(store, regulator):
    long_ago = now_micros() - 800 * 86_400_000_000  # the default period is 730 days
    store.record_deliveries([DeliveredPage("northtel", ADVISORIES, long_ago, ((long_ago - 1, advisory(1)["id"],
                                                                              "2026-01-01T00:00:00.000Z"),))],
                            [Poll("northtel", ADVISORIES, long_ago)])
    assert report(regulator, "deliveries/")["deliveries"] == []


# --- concurrency -------------------------------------------------------------------------------------

def test_concurrent_polls_and_writes_record_every_delivery_once(as_operator, regulator):
    """Two licensees page through advisories with added_after while the regulator publishes."""
    sent = poll_while_publishing(as_operator)
    assert len(sent["northtel"]) == 12 * 5
    for operator, versions in sent.items():
        assert delivered_to(regulator, operator) == versions


def test_two_worker_processes_record_every_delivery_once_and_flush_on_shutdown(tmp_path, storage_url, config_path,
                                                                                  keys):
    """Under `serve --workers 2` each page may go to either process; after a graceful stop
    nothing either buffered is missing."""
    require_shared_store(storage_url)
    server = TaxiiServerProcess(config_path, tmp_path / "serve.log", workers=2)
    server.start()
    try:
        sent = poll_while_publishing(lambda operator: TaxiiSession(server.url, keys[operator], operator))
    finally:
        server.stop()
    assert not server.server_errors()
    rows = json.loads(cli(config_path, "report", "delivery", "--format", "json"))["deliveries"]
    keys_seen = [(r["object_id"], r["version"], r["operator"]) for r in rows]
    assert len(keys_seen) == len(set(keys_seen))
    for operator, versions in sent.items():
        assert {(r["object_id"], r["version"]) for r in rows if r["operator"] == operator} == versions


def poll_while_publishing(as_operator) -> dict[str, set]:
    """The regulator publishes 12 rounds of new versions while northtel and southwave poll
    advisories (every version, small pages, added_after); returns what each was sent."""
    regulator = as_operator("regulator")
    publisher_done = threading.Event()
    sent: dict[str, set] = {"northtel": set(), "southwave": set()}
    errors: list[str] = []

    def publish_versions():
        try:
            for round_ in range(12):
                publish(regulator, ADVISORIES, *(advisory(n, modified=f"2026-01-{round_ + 1:02d}T00:00:00.000Z")
                                                 for n in range(round_ % 3, 15, 3)))
        except AssertionError as exc:
            errors.append(str(exc))
        finally:
            publisher_done.set()

    def poll(operator: str):
        session, added_after = as_operator(operator), None
        while True:
            done = publisher_done.is_set()
            params = {"limit": "4", "match[version]": "all", **({"added_after": added_after} if added_after else {})}
            while True:
                answer = session.get(OBJECTS, params=params)
                sent[operator] |= received(answer)
                added_after = answer.headers.get("X-TAXII-Date-Added-Last", added_after)
                if not answer.json()["more"]:
                    break
                params = {**params, "next": answer.json()["next"]}
            if done:
                return

    threads = [threading.Thread(target=publish_versions)] + [threading.Thread(target=poll, args=(op,))
                                                           for op in sent]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors
    return sent


# --- taxii-server report ----------------------------------------------------------------------------

def test_the_three_reports_on_the_command_line(config_path, settings, server, keys, advisories, northtel, regulator):
    for page in as_pages(client_collection(server, keys, "southwave", ADVISORIES).get_objects, per_request=2):
        assert page.get("objects")
    northtel.get(OBJECTS, params={"match[id]": advisories[0]})
    publish(northtel, private(settings, "northtel"), opinion([advisories[0]]),
            sighting(advisories[0], 3, "2026-02-01T00:00:00Z", "2026-02-02T00:00:00Z"))
    server_view = report(regulator, "deliveries/")["deliveries"]

    as_json = json.loads(cli(config_path, "report", "delivery", "--format", "json"))
    assert as_json["deliveries"] == server_view
    assert {r["object_id"]: r["licensees_acknowledged"] for r in as_json["summary"]}[advisories[0]] == 1

    as_csv = cli(config_path, "report", "delivery", "--collection", "advisories", "--since", "1d", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.split("\n\n")[0])))
    assert len(rows) == len(server_view) == 6
    assert set(rows[0]) == {"object_id", "version", "collection", "operator", "delivered_at", "acknowledged_at"}

    table = cli(config_path, "report", "licensees")
    assert table.splitlines()[0].split()[:3] == ["OPERATOR", "NAME", "LAST_REQUEST"]
    assert len(table.splitlines()) == 3

    sightings = json.loads(cli(config_path, "report", "sightings", "--format", "json"))["indicators"]
    assert [(s["indicator_id"], s["operators"], s["sightings"]) for s in sightings] == [(advisories[0], 1, 3)]


def test_the_earliest_of_two_processes_records_of_one_delivery_is_kept(store):
    """Two processes may record one delivery and write their pages in either order."""
    version = (1_700_000_000_000_000, advisory(1)["id"], "2026-01-01T00:00:00.000Z")
    later, earlier = (DeliveredPage("northtel", ADVISORIES, at, (version,)) for at in (2_000, 1_000))
    store.record_deliveries([later], [])
    assert store.compact_deliveries(10) == 1
    store.record_deliveries([earlier, later], [])
    assert store.compact_deliveries(10) == 2 and store.compact_deliveries(10) == 0
    assert [d.delivered_at for d in store.deliveries(None, None, None, None, 10)] == [1_000]


@given(params=st.dictionaries(st.sampled_from(["collection", "since", "limit", "next"]),
                              st.one_of(st.text(max_size=40), st.integers().map(str),
                                        st.sampled_from(["advisories", "7d", "99999999999d", "0", "10000"])),
                              max_size=4),
       path=st.sampled_from(["deliveries/", "deliveries/summary/", "acknowledgements/"]))
@hypothesis_settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_any_report_parameters_get_an_answer_or_400_never_a_server_error(regulator, params, path):
    answer = regulator.get(f"/compliance/{path}", params=params)
    assert answer.status_code in (200, 400), answer.text
    if answer.status_code == 400:
        assert answer.json()["http_status"] == "400"
