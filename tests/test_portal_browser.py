"""The portal in a real browser: headless Chromium driven through Selenium
against the server on a loopback socket, as the regulator and as licensees.

With PORTAL_SCREENSHOTS=<folder> set, the main pages are saved there as PNG
(the README's pictures come from `PORTAL_SCREENSHOTS=docs/screenshots`)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import requests
from backends import BACKENDS, discard
from conftest import ADVISORIES, COMMUNITY, TAXII, LiveServer, indicator, write_config

from taxii_server.auth import Principal
from taxii_server.ingest import store_objects
from taxii_server.app import create_app
from taxii_server.config import derived_collection_id, load_settings
from taxii_server.keys import issue_key
from taxii_server.storage import open_store
from taxii_server.portal import authoring
from taxii_server.storage.base import ObjectQuery
from taxii_server.timestamps import now_micros

CHROMIUM, CHROMEDRIVER = shutil.which("chromium") or "/usr/bin/chromium", "/usr/bin/chromedriver"
if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
    pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
                allow_module_level=True)

from selenium import webdriver  # noqa: E402  (only once the browser is known to be there)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

NORTHTEL_REPORTS = derived_collection_id("licensee-reports", "northtel")
SOUTHWAVE_REPORTS = derived_collection_id("licensee-reports", "southwave")
SCREENSHOTS = os.environ.get("PORTAL_SCREENSHOTS")
FINDING_HASH = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


class Exchange:
    """One deployment for the module: store, keys per operator, server on loopback."""

    def __init__(self, folder: Path, storage_url: str):
        # Every test signs in anew from one address: more than the default limit allows a minute.
        config = write_config(folder, storage=storage_url, portal={"sign_ins_per_minute": 10_000})
        self.settings = load_settings(config, environ={})
        self.store = open_store(self.settings.storage_url)
        self.keys = {op: issue_key(self.store, self.settings.secret, op).raw_key
                     for op in ("regulator", "northtel", "southwave")}
        self.app = create_app(self.settings, self.store)
        self.server = LiveServer(self.app)
        self.url = self.server.url

    def objects(self, collection_id: str, type_: str | None = None) -> list[dict]:
        page = self.store.query(ObjectQuery(collection_id=collection_id, limit=1000,
                                            types=(type_,) if type_ else ()))
        return [json.loads(record.body) for record in page.records]

    def close(self):
        self.server.stop()
        self.store.close()


@pytest.fixture(scope="module", params=sorted(BACKENDS))
def exchange(request, tmp_path_factory):
    url = BACKENDS[request.param](tmp_path_factory.mktemp("portal"))
    deployment = Exchange(tmp_path_factory.mktemp("config"), url)
    yield deployment
    deployment.close()
    discard(url)


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="portal-chromium-")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}", "--window-size=1200,860"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


class Analyst:
    """A person at the browser, signed in as one operator."""

    def __init__(self, driver, exchange: Exchange):
        self.driver, self.exchange = driver, exchange

    def open(self, path: str):
        self.driver.get(self.exchange.url + path)
        return self

    def sign_in(self, operator: str, key: str | None = None):
        self.driver.delete_all_cookies()
        self.open("/portal/sign-in")
        self.type("operator", operator)
        self.type("key", key or self.exchange.keys[operator])
        self.press("Sign in")
        return self

    def type(self, field_id: str, text: str):
        element = self.driver.find_element(By.ID, field_id)
        element.clear()
        element.send_keys(text)

    def choose(self, field_id: str, visible_text: str):
        Select(self.driver.find_element(By.ID, field_id)).select_by_visible_text(visible_text)

    def press(self, label: str):
        self._and_wait(self.driver.find_element(By.XPATH, f"//button[normalize-space()='{label}']"))

    def follow(self, text: str):
        self._and_wait(self.driver.find_element(By.PARTIAL_LINK_TEXT, text))

    def _and_wait(self, element):
        """Click, then wait until the next page has replaced this one."""
        page = self.driver.find_element(By.TAG_NAME, "html")
        element.click()
        WebDriverWait(self.driver, 30).until(lambda driver: _gone(page))
        WebDriverWait(self.driver, 30).until(
            lambda driver: driver.execute_script("return document.readyState") == "complete")

    @property
    def heading(self) -> str:
        return self.driver.find_element(By.TAG_NAME, "h1").text

    @property
    def text(self) -> str:
        return self.driver.find_element(By.TAG_NAME, "body").text

    @property
    def path(self) -> str:
        return self.driver.current_url[len(self.exchange.url):]

    def http(self) -> requests.Session:
        """requests carrying this browser's cookies: the same session, without its forms."""
        session = requests.Session()
        for cookie in self.driver.get_cookies():
            session.cookies.set(cookie["name"], cookie["value"], path=cookie.get("path", "/"))
        return session

    def screenshot(self, name: str):
        if SCREENSHOTS:
            Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
            self.driver.execute_script("document.activeElement.blur(); window.scrollTo(0, 0);")
            self.driver.save_screenshot(str(Path(SCREENSHOTS) / f"{name}.png"))


def _gone(element) -> bool:
    """Whether the element's page has been replaced (Chromium says so in one of two ways)."""
    try:
        element.tag_name
    except (StaleElementReferenceException, WebDriverException):
        return True
    return False


@pytest.fixture
def analyst(browser, exchange) -> Analyst:
    return Analyst(browser, exchange)


@pytest.fixture(scope="module")
def advisory(exchange) -> dict:
    """An advisory the regulator published (the publishing form has a test of its own)."""
    details = authoring.Details(name="Smishing wave against subscribers", description="Parcel fee texts.",
                                tlp="green", valid_from=now_micros())
    made = authoring.indicators("domain", ["parcel-fee.example", "parcel-fee2.example"], details)
    made.append(authoring.advisory(details, made))
    regulator = Principal(exchange.settings.operators["regulator"], "seed")
    with exchange.app.test_request_context():  # stored as the portal's publishing form stores it
        report = store_objects(exchange.app.extensions["taxii"], regulator, exchange.settings.collection(ADVISORIES),
                               lambda: made, now_micros())
    assert report.success_count == 3
    return made[-1]


# -- sign-in -----------------------------------------------------------------------------------------------------

def test_a_page_asks_for_sign_in_and_a_wrong_key_is_refused(analyst):
    analyst.driver.delete_all_cookies()
    analyst.open("/portal/")
    assert analyst.heading == "Sign in"
    analyst.screenshot("sign-in")
    analyst.sign_in("northtel", analyst.exchange.keys["southwave"])  # a real key, but another operator's
    assert analyst.heading == "Sign in"
    assert "do not match a live key" in analyst.text


def test_signing_in_works_from_the_keyboard_alone(analyst):
    analyst.driver.delete_all_cookies()
    analyst.open("/portal/sign-in")
    focused = []
    for _ in range(5):
        analyst.driver.switch_to.active_element.send_keys(Keys.TAB)
        element = analyst.driver.switch_to.active_element
        focused.append(element.get_attribute("id") or element.text)
    assert focused == ["Skip to content", "Threat exchange portal", "operator", "key", "Sign in"]
    analyst.driver.find_element(By.ID, "operator").send_keys("northtel", Keys.TAB,
                                                             analyst.exchange.keys["northtel"])
    page = analyst.driver.find_element(By.TAG_NAME, "html")
    analyst.driver.switch_to.active_element.send_keys(Keys.ENTER)
    WebDriverWait(analyst.driver, 30).until(lambda driver: _gone(page))
    assert analyst.heading == "What is new"


def test_signing_in_shows_the_operators_collections_and_signing_out_ends_the_session(analyst):
    analyst.sign_in("northtel")
    assert analyst.heading == "What is new"
    assert "Regulator advisories" in analyst.text and "NorthTel: reports to the regulator" in analyst.text
    assert "SouthWave" not in analyst.text
    cookie = analyst.driver.get_cookie("taxii_portal_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    kept = analyst.http()
    analyst.press("Sign out")
    assert analyst.heading == "Sign in"
    assert kept.get(analyst.exchange.url + "/portal/", allow_redirects=False).status_code == 302  # ended in the store


# -- the regulator -------------------------------------------------------------------------------------------------

def test_the_regulator_publishes_an_advisory_to_everyone(analyst):
    analyst.sign_in("regulator").follow("Publish an advisory")
    analyst.choose("destination", "Everyone: Regulator advisories")
    analyst.type("name", "Fake bank login pages")
    analyst.choose("kind", "Domain name")
    analyst.type("values", "bank-login.example\n\nbank-login2.example\n")
    analyst.choose("tlp", "TLP:GREEN")
    analyst.type("description", "Text messages ask for a parcel fee.")
    analyst.screenshot("publish")
    analyst.press("Publish")
    assert analyst.heading == "Regulator advisories"
    assert "3 object(s) stored" in analyst.text
    [published] = [r for r in analyst.exchange.objects(ADVISORIES, "report") if r["name"].startswith("Fake bank")]
    assert len(published["object_refs"]) == 2
    assert published["object_marking_refs"] == ["marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"]
    patterns = {o["pattern"] for o in analyst.exchange.objects(ADVISORIES, "indicator")}
    assert "[domain-name:value = 'bank-login.example']" in patterns


def test_a_bad_value_is_shown_next_to_the_field_and_nothing_is_stored(analyst):
    before = len(analyst.exchange.objects(ADVISORIES))
    analyst.sign_in("regulator").open("/portal/publish")
    analyst.type("name", "Broken")
    analyst.choose("kind", "IPv4 address or network")
    analyst.type("values", "203.0.113.9\nnot-an-address")
    analyst.press("Publish")
    assert "line 2: 'not-an-address' is not a valid IPv4 address or network" in analyst.text
    assert len(analyst.exchange.objects(ADVISORIES)) == before


def test_a_directed_alert_reaches_one_licensee_only(analyst):
    analyst.sign_in("regulator").open("/portal/publish")
    analyst.choose("destination", "Only NorthTel: NorthTel: reports to the regulator")
    analyst.type("name", "Your exposed management interface")
    analyst.choose("kind", "IPv4 address or network")
    analyst.type("values", "198.51.100.44")
    analyst.choose("tlp", "TLP:RED")
    analyst.press("Publish")
    assert "NorthTel" in analyst.heading
    analyst.sign_in("northtel").open(f"/portal/collections/{NORTHTEL_REPORTS}/?type=report")
    assert "Your exposed management interface" in analyst.text
    analyst.sign_in("southwave").open(f"/portal/collections/{NORTHTEL_REPORTS}/")
    assert analyst.heading == "Not Found"
    assert "exposed management" not in analyst.open("/portal/").text


# -- licensees -----------------------------------------------------------------------------------------------------

def test_a_licensee_acknowledges_an_advisory_with_one_click(analyst, advisory):
    analyst.sign_in("northtel").open("/portal/")
    analyst.screenshot("home")
    analyst.follow("Smishing wave against subscribers")
    assert analyst.heading == "Smishing wave against subscribers"
    assert "TLP:GREEN" in analyst.text and "Versions" in analyst.text
    analyst.screenshot("object")
    analyst.press("Acknowledge")
    assert "Acknowledged" in analyst.text
    [opinion] = analyst.exchange.objects(NORTHTEL_REPORTS, "opinion")
    assert (opinion["opinion"], opinion["object_refs"]) == ("agree", [advisory["id"]])
    assert analyst.exchange.objects(ADVISORIES, "opinion") == []


def test_a_licensee_reports_a_finding_that_only_it_and_the_regulator_see(analyst):
    analyst.sign_in("northtel").follow("Report a finding")
    assert Select(analyst.driver.find_element(By.ID, "destination")).first_selected_option.text == \
        "NorthTel: reports to the regulator"
    analyst.type("name", "Scanner at our border")
    analyst.choose("kind", "SHA-256 file hash")
    analyst.type("values", FINDING_HASH.upper())
    analyst.choose("tlp", "TLP:AMBER")
    analyst.type("valid_until", "12312030")  # typed into the date field as a person would
    analyst.screenshot("report-finding")
    analyst.press("Report")
    assert "1 object(s) stored in NorthTel: reports to the regulator" in analyst.text
    [finding] = [o for o in analyst.exchange.objects(NORTHTEL_REPORTS, "indicator") if "Scanner" in o["name"]]
    assert finding["pattern"] == f"[file:hashes.'SHA-256' = '{FINDING_HASH}']"
    assert finding["valid_until"].startswith("2030-12-31")
    analyst.sign_in("regulator").open(f"/portal/collections/{NORTHTEL_REPORTS}/?q=scanner")
    assert "Scanner at our border" in analyst.text
    analyst.sign_in("southwave")
    for path in (f"/portal/collections/{NORTHTEL_REPORTS}/", f"/portal/collections/{NORTHTEL_REPORTS}/objects/"
                 f"{finding['id']}/", f"/portal/collections/{NORTHTEL_REPORTS}/export.csv", "/portal/"):
        assert "Scanner at our border" not in analyst.open(path).text


def test_a_licensee_uploads_a_bundle_and_sees_what_was_refused(analyst, tmp_path):
    bundle = tmp_path / "bundle.json"
    bundle.write_text(json.dumps({"type": "bundle", "id": "bundle--2f7e2a50-3f6d-4a43-9d38-3a6fd4c2f001",
                                  "objects": [indicator(801), {**indicator(802), "pattern": "[not a pattern"}]}))
    analyst.sign_in("southwave").follow("Upload a bundle")
    analyst.choose("destination", "SouthWave: reports to the regulator")
    analyst.driver.find_element(By.ID, "bundle").send_keys(str(bundle))
    analyst.press("Upload")
    assert "1 object(s) stored" in analyst.text and "Not stored: " + indicator(802)["id"] in analyst.text
    assert [o["id"] for o in analyst.exchange.objects(SOUTHWAVE_REPORTS)] == [indicator(801)["id"]]


def test_a_licensee_shares_its_object_to_the_community(analyst):
    analyst.sign_in("southwave").open(f"/portal/collections/{SOUTHWAVE_REPORTS}/objects/{indicator(801)['id']}/")
    analyst.press("Share to Community sharing")
    assert "Shared into Community sharing" in analyst.text
    assert [o["id"] for o in analyst.exchange.objects(COMMUNITY)] == [indicator(801)["id"]]


# -- for everyone: browsing and downloading ------------------------------------------------------------------------

def test_the_browser_filters_by_type_tlp_text_and_date_and_downloads_the_listing(analyst, advisory):
    analyst.sign_in("northtel").open(f"/portal/collections/{ADVISORIES}/")
    analyst.screenshot("collection")
    analyst.choose("f-type", "indicator")
    analyst.choose("f-tlp", "TLP:GREEN")
    analyst.type("f-q", "parcel-fee2")
    analyst.press("Filter")
    rows = analyst.driver.find_elements(By.CSS_SELECTOR, "table.objects tbody tr")
    titles = [row.find_element(By.TAG_NAME, "a").text for row in rows]
    assert titles == ["Smishing wave against subscribers: parcel-fee2.example"]
    http = analyst.http()
    csv_text = http.get(analyst.driver.find_element(By.LINK_TEXT, "CSV").get_attribute("href")).text
    assert csv_text.splitlines()[0].startswith("id,type,title,pattern,tlp")
    assert len(csv_text.splitlines()) == 2 and "parcel-fee2.example" in csv_text
    bundle = http.get(analyst.driver.find_element(By.LINK_TEXT, "STIX bundle").get_attribute("href")).json()
    assert bundle["type"] == "bundle" and [o["type"] for o in bundle["objects"]] == ["indicator"]
    analyst.open(f"/portal/collections/{ADVISORIES}/?from=2000-01-01&until=2000-12-31")
    assert "No object on this page matches." in analyst.text


# -- what the portal refuses -----------------------------------------------------------------------------------------

def test_a_post_without_the_form_token_is_refused_and_changes_nothing(analyst, advisory):
    analyst.sign_in("southwave")
    session = analyst.http()  # signed in: only the form's CSRF token is missing
    url = f"{analyst.exchange.url}/portal/collections/{ADVISORIES}/objects/{advisory['id']}/acknowledge"
    refused = session.post(url, allow_redirects=False)
    assert refused.status_code == 400 and "Form refused" in refused.text
    assert [o for o in analyst.exchange.objects(SOUTHWAVE_REPORTS) if o["type"] == "opinion"] == []
    assert session.post(f"{analyst.exchange.url}/portal/sign-out").status_code == 400
    assert analyst.open("/portal/").heading == "What is new"  # still signed in


def test_revoking_the_key_ends_its_session_at_the_next_page(analyst):
    exchange = analyst.exchange
    key = issue_key(exchange.store, exchange.settings.secret, "northtel", label="analyst laptop")
    analyst.sign_in("northtel", key.raw_key)
    assert analyst.heading == "What is new"
    exchange.store.revoke_key(key.record.key_id, 1)
    analyst.open(f"/portal/collections/{ADVISORIES}/")
    assert analyst.heading == "Sign in"


def test_the_session_cookie_is_no_credential_for_the_taxii_api(analyst):
    analyst.sign_in("northtel")
    answer = analyst.http().get(f"{analyst.exchange.url}/api/collections/", headers={"Accept": TAXII})
    assert answer.status_code == 401
