"""The regulator's pages in a real browser (headless Chromium through Selenium):
the compliance matrix, the inbox with its "Republish" action, sightings per
indicator and the feed report; and that a licensee finds none of them.

Shares the deployment, browser and analyst of tests/test_portal_browser.py
(one browser for the module, one deployment per backend). With
PORTAL_SCREENSHOTS=<folder> set, the four pages are saved there as PNG."""

from __future__ import annotations

import uuid

import pytest
from conftest import ADVISORIES, TaxiiSession, envelope, indicator
from test_portal_browser import NORTHTEL_REPORTS, Analyst, advisory, browser, exchange  # noqa: F401  (fixtures)

from taxii_server.portal import authoring
from taxii_server.sharing.identities import identity_of
from taxii_server.timestamps import now_micros

from selenium.webdriver.common.by import By  # noqa: E402  (after the module skips without a browser)

REGULATOR_PAGES = ("/portal/compliance", "/portal/inbox", "/portal/sightings", "/portal/feed-report")


@pytest.fixture
def analyst(browser, exchange) -> Analyst:  # noqa: F811
    return Analyst(browser, exchange)


def taxii(exchange, operator: str) -> TaxiiSession:
    return TaxiiSession(exchange.url, exchange.keys[operator], operator)


def stored(session: TaxiiSession, collection_id: str, *objects: dict) -> None:
    answer = session.post(f"/collections/{collection_id}/objects/", envelope(*objects))
    assert answer.status_code == 202 and answer.json()["failure_count"] == 0, answer.text


def reported(name: str, tlp: str, value: str) -> dict:
    """A licensee's finding, as the portal's reporting form writes it."""
    details = authoring.Details(name=name, description="Seen at our border.", tlp=tlp, valid_from=now_micros())
    [finding] = authoring.indicators("domain", [value], details)
    return finding


def row_with(analyst: Analyst, table: str, text: str):
    [row] = [r for r in analyst.driver.find_elements(By.CSS_SELECTOR, f"table.{table} tbody tr") if text in r.text]
    return row


# -- the compliance matrix -------------------------------------------------------------------------------------------

def test_the_matrix_shows_a_delivery_over_taxii_and_an_acknowledgement_made_in_the_portal(analyst, advisory):
    answer = taxii(analyst.exchange, "northtel").get(f"/collections/{ADVISORIES}/objects/{advisory['id']}/")
    assert answer.status_code == 200
    analyst.sign_in("northtel").open(f"/portal/collections/{ADVISORIES}/objects/{advisory['id']}/")
    analyst.press("Acknowledge")
    assert "Acknowledged" in analyst.text
    analyst.sign_in("regulator").follow("Compliance")
    assert analyst.heading == "Compliance"
    headers = [th.text for th in analyst.driver.find_elements(By.CSS_SELECTOR, "table.matrix thead th")]
    assert headers[:2] == ["Object", "Collection"] and set(headers[2:]) == {"NorthTel", "SouthWave"}
    cells = dict(zip(headers, (cell.text for cell in row_with(analyst, "matrix", advisory["name"])
                              .find_elements(By.CSS_SELECTOR, "th, td"))))
    assert cells["NorthTel"].startswith("delivered 20") and "\nacknowledged 20" in cells["NorthTel"]
    assert cells["SouthWave"] == "not delivered"
    assert cells["Object"].startswith("Smishing wave against subscribers\nreport, version 20")
    # SouthWave has received nothing of what was published to it: it is behind, so it comes first.
    behind = [row.find_element(By.TAG_NAME, "th").text
              for row in analyst.driver.find_elements(By.CSS_SELECTOR, "table.licensees tbody tr")]
    assert behind[0] == "SouthWave" and headers[2] == "SouthWave"
    analyst.screenshot("compliance")


# -- the inbox -------------------------------------------------------------------------------------------------------

def test_republishing_from_the_inbox_makes_an_advisory_a_licensee_reads_and_refuses_tlp_red(analyst):
    shareable = reported("Credential phishing kit", "green", f"kit-{uuid.uuid4().hex[:8]}.example")
    secret = reported("Our own breached host", "red", f"breach-{uuid.uuid4().hex[:8]}.example")
    stored(taxii(analyst.exchange, "northtel"), NORTHTEL_REPORTS, shareable, secret)
    alert = {**reported("Directed alert to NorthTel", "amber", "alert.example"),
             "created_by_ref": identity_of(analyst.exchange.settings.operators["regulator"])}
    stored(taxii(analyst.exchange, "regulator"), NORTHTEL_REPORTS, alert)  # the regulator's own: not a report
    analyst.sign_in("regulator").follow("Inbox")
    assert analyst.heading == "Inbox"
    assert "Directed alert" not in analyst.text
    titles = [row.find_element(By.TAG_NAME, "a").text
              for row in analyst.driver.find_elements(By.CSS_SELECTOR, "table.inbox tbody tr")]
    assert titles[:2] == ["Our own breached host: " + secret["name"].split(": ")[-1],
                          "Credential phishing kit: " + shareable["name"].split(": ")[-1]]  # newest first
    analyst.screenshot("inbox")

    analyst._and_wait(row_with(analyst, "inbox", "Our own breached host").find_element(By.TAG_NAME, "button"))
    assert analyst.heading == "Inbox"
    assert "Not republished: the object is marked TLP:RED" in analyst.text

    analyst._and_wait(row_with(analyst, "inbox", "Credential phishing kit").find_element(By.TAG_NAME, "button"))
    assert "Republished into Regulator advisories as indicator--" in analyst.text
    new_id = analyst.path.split("/objects/")[1].strip("/")
    assert new_id != shareable["id"]
    [advisory_made] = [o for o in analyst.exchange.objects(ADVISORIES, "indicator") if o["id"] == new_id]
    assert advisory_made["pattern"] == shareable["pattern"]
    assert not [o for o in analyst.exchange.objects(ADVISORIES) if "breach-" in o.get("pattern", "")]

    analyst.sign_in("southwave").open(f"/portal/collections/{ADVISORIES}/objects/{new_id}/")
    assert "Credential phishing kit" in analyst.heading
    assert "NorthTel" not in analyst.text


def test_a_republish_post_without_the_form_token_is_refused_and_stores_nothing(analyst):
    finding = reported("Scanner farm", "green", f"scan-{uuid.uuid4().hex[:8]}.example")
    stored(taxii(analyst.exchange, "northtel"), NORTHTEL_REPORTS, finding)
    before = len(analyst.exchange.objects(ADVISORIES))
    analyst.sign_in("regulator").open("/portal/inbox")
    form = {"object_id": finding["id"], "source": NORTHTEL_REPORTS, "target": ADVISORIES}
    refused = analyst.http().post(f"{analyst.exchange.url}/portal/inbox/republish", data=form, allow_redirects=False)
    assert refused.status_code == 400 and "Form refused" in refused.text
    assert len(analyst.exchange.objects(ADVISORIES)) == before


# -- sightings and the feed report ------------------------------------------------------------------------------------

def test_sightings_and_false_positive_reports_are_shown_per_indicator(analyst, advisory):
    indicator_id = advisory["object_refs"][0]
    seen = {"type": "sighting", "spec_version": "2.1", "id": f"sighting--{uuid.uuid4()}",
            "created": "2026-02-01T00:00:00.000Z", "modified": "2026-02-01T00:00:00.000Z",
            "sighting_of_ref": indicator_id, "count": 7, "first_seen": "2026-02-01T08:00:00Z",
            "last_seen": "2026-02-02T09:30:00Z"}
    disagreeing = {"type": "opinion", "spec_version": "2.1", "id": f"opinion--{uuid.uuid4()}",
                   "created": "2026-02-03T00:00:00.000Z", "modified": "2026-02-03T00:00:00.000Z",
                   "opinion": "strongly-disagree", "object_refs": [indicator_id],
                   "explanation": "A customer's parcel service."}
    stored(taxii(analyst.exchange, "northtel"), NORTHTEL_REPORTS, seen, disagreeing)
    analyst.sign_in("regulator").follow("Sightings")
    assert analyst.heading == "Sightings and false positives"
    cells = [c.text for c in row_with(analyst, "sightings", indicator_id).find_elements(By.CSS_SELECTOR, "th, td")]
    assert cells == ["Smishing wave against subscribers: parcel-fee.example\n" + indicator_id, "1", "7", "1",
                     "2026-02-01 08:00:00 UTC", "2026-02-02 09:30:00 UTC"]
    analyst.screenshot("sightings")
    analyst.follow("Smishing wave against subscribers: parcel-fee.example")
    assert analyst.path == f"/portal/collections/{ADVISORIES}/objects/{indicator_id}/"


def test_the_feed_report_shows_what_was_held_back_and_why(analyst):
    private_address = indicator(uuid.uuid4().int % 2 ** 32, pattern="[ipv4-addr:value = '10.1.2.3']",
                                name="Internal address by mistake")
    stored(taxii(analyst.exchange, "regulator"), ADVISORIES, private_address)
    analyst.sign_in("regulator").follow("Feed report")
    assert analyst.heading == "Feed report"
    cells = [c.text for c in row_with(analyst, "feed-entries", private_address["id"]).find_elements(By.TAG_NAME, "td")]
    assert cells[2:] == ["held back", "10.1.2.3 ipv4", "overlaps the allowlisted network 10.0.0.0/8"]
    assert "overlaps the allowlisted network 10.0.0.0/8" in analyst.driver.find_element(By.CSS_SELECTOR,
                                                                                         "table.summary").text
    analyst.screenshot("feed-report")


# -- licensees -----------------------------------------------------------------------------------------------------

def test_a_licensee_sees_no_link_to_the_regulators_pages_and_gets_404_for_each(analyst):
    analyst.sign_in("northtel")
    nav = analyst.driver.find_element(By.CSS_SELECTOR, "nav[aria-label='Main']").text
    for label in ("Compliance", "Inbox", "Sightings", "Feed report"):
        assert label not in nav
    for path in REGULATOR_PAGES:
        assert analyst.open(path).heading == "Not Found", path
    session = analyst.http()
    for path in REGULATOR_PAGES:
        assert session.get(analyst.exchange.url + path, allow_redirects=False).status_code == 404, path
    token = analyst.driver.find_element(By.NAME, "csrf_token").get_attribute("value")  # a valid form token
    before = len(analyst.exchange.objects(ADVISORIES))
    answer = session.post(f"{analyst.exchange.url}/portal/inbox/republish", allow_redirects=False,
                          data={"csrf_token": token, "object_id": indicator(1)["id"], "source": NORTHTEL_REPORTS,
                                "target": ADVISORIES})
    assert answer.status_code == 404 and len(analyst.exchange.objects(ADVISORIES)) == before


def test_a_page_position_the_matrix_never_gave_is_a_400(analyst):
    session = analyst.sign_in("regulator").http()
    for after in ("no-colon", ":12", "x:-1", "x:" + "9" * 40):
        answer = session.get(f"{analyst.exchange.url}/portal/compliance", params={"after": after})
        assert answer.status_code == 400 and "page position is not valid" in answer.text, after
    assert session.get(f"{analyst.exchange.url}/portal/compliance", params={"after": "x:12"}).status_code == 200
