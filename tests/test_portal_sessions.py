"""Portal sign-in and sessions over real HTTP, on every backend: what ends a
session, what the cookies promise, and what bad input gets."""

from __future__ import annotations

import dataclasses
import re
import time

import pytest
import requests
from conftest import ADVISORIES, TAXII, LiveServer, envelope, indicator

from taxii_server.app import create_app
from taxii_server.keys import issue_key
from taxii_server.portal import listing
from taxii_server.portal.listing import Filters, list_objects
from taxii_server.timestamps import now_micros

pytestmark = pytest.mark.every_backend

TOKEN = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def form_token(http: requests.Session, url: str) -> str:
    return TOKEN.search(http.get(url).text).group(1)


def sign_in(base: str, operator: str, key: str, http: requests.Session | None = None) -> requests.Response:
    http = http or requests.Session()
    token = form_token(http, f"{base}/portal/sign-in")
    answer = http.post(f"{base}/portal/sign-in", data={"csrf_token": token, "operator": operator, "key": key},
                       allow_redirects=False)
    answer.http = http
    return answer


def signed_in(answer: requests.Response) -> bool:
    return answer.http.get(answer.url.rsplit("/portal/", 1)[0] + "/portal/", allow_redirects=False).status_code == 200


def test_a_right_key_signs_in_with_a_session_cookie_the_browser_keeps_to_itself(server, keys):
    answer = sign_in(server.url, "northtel", keys["northtel"])
    assert answer.status_code == 302 and answer.headers["Location"] == "/portal/"
    cookie = next(c for c in answer.raw.headers.getlist("Set-Cookie") if c.startswith("taxii_portal_session="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/portal" in cookie
    assert "Secure" not in cookie  # plain HTTP on loopback; under HTTPS, below
    assert signed_in(answer)


def test_under_https_both_cookies_are_secure(app, keys):
    client = app.test_client()
    page = client.get("/portal/sign-in", base_url="https://portal.example")
    token = TOKEN.search(page.text).group(1)
    answer = client.post("/portal/sign-in", base_url="https://portal.example",
                         headers={"Referer": "https://portal.example/portal/sign-in"},  # checked under HTTPS
                         data={"csrf_token": token, "operator": "northtel", "key": keys["northtel"]})
    cookies = page.headers.getlist("Set-Cookie") + answer.headers.getlist("Set-Cookie")
    assert {c.split("=")[0] for c in cookies} == {"taxii_portal_forms", "taxii_portal_session"}
    assert all("Secure" in c for c in cookies)


def test_behind_a_proxy_that_ends_https_the_cookies_can_be_always_secure(settings, store, keys):
    live = LiveServer(create_app(dataclasses.replace(settings, portal_secure_cookies=True), store))
    try:
        page = requests.get(f"{live.url}/portal/sign-in")
        [forms_cookie] = page.raw.headers.getlist("Set-Cookie")
        # A client keeps Secure cookies off plain HTTP: this test hands the form's cookie back itself.
        answer = requests.post(f"{live.url}/portal/sign-in", allow_redirects=False,
                               headers={"Cookie": forms_cookie.split(";")[0]},
                               data={"csrf_token": TOKEN.search(page.text).group(1), "operator": "northtel",
                                     "key": keys["northtel"]})
        assert answer.status_code == 302
        cookies = [forms_cookie, *answer.raw.headers.getlist("Set-Cookie")]
        assert any(c.startswith("taxii_portal_session=") for c in cookies)
        assert all("; Secure" in cookie for cookie in cookies)
    finally:
        live.stop()


@pytest.mark.parametrize("operator, key_of", [("northtel", "southwave"), ("northtel", None), ("nobody", "northtel")])
def test_a_key_that_is_not_the_operators_live_key_is_refused(server, keys, operator, key_of):
    answer = sign_in(server.url, operator, keys[key_of] if key_of else "tx_0123456789ab_" + "x" * 43)
    assert answer.status_code == 401 and "do not match a live key" in answer.text
    assert not signed_in(answer)


def test_signing_in_again_ends_the_browsers_earlier_session(server, keys):
    first = sign_in(server.url, "northtel", keys["northtel"])
    earlier = first.http.cookies.get("taxii_portal_session")
    again = sign_in(server.url, "northtel", keys["northtel"], http=first.http)
    assert signed_in(again) and again.http.cookies.get("taxii_portal_session") != earlier
    stale = requests.Session()
    stale.cookies.set("taxii_portal_session", earlier)
    assert stale.get(f"{server.url}/portal/", allow_redirects=False).status_code == 302


def test_sign_in_attempts_are_limited_per_client_address(server, keys, settings):
    for _ in range(settings.portal_sign_ins_per_minute):
        assert sign_in(server.url, "northtel", "tx_0123456789ab_" + "x" * 43).status_code == 401
    refused = sign_in(server.url, "northtel", keys["northtel"])  # even the right key, until the minute is over
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "60"
    assert not signed_in(refused)


def test_sign_in_without_the_form_token_is_refused(server, keys):
    answer = requests.post(f"{server.url}/portal/sign-in", data={"operator": "northtel", "key": keys["northtel"]})
    assert answer.status_code == 400 and "Form refused" in answer.text


def test_a_session_ends_after_the_idle_time(settings, store, keys):
    live = LiveServer(create_app(dataclasses.replace(settings, portal_idle_seconds=1), store))
    try:
        answer = sign_in(live.url, "northtel", keys["northtel"])
        assert signed_in(answer)
        time.sleep(1.5)
        assert not signed_in(answer)
    finally:
        live.stop()


def test_a_session_ends_when_its_key_expires(server, store, settings):
    key = issue_key(store, settings.secret, "northtel")
    answer = sign_in(server.url, "northtel", key.raw_key)
    assert signed_in(answer)
    store.set_key_expiry(key.record.key_id, now_micros() - 1)
    assert not signed_in(answer)
    store.set_key_expiry(key.record.key_id, None)  # an ended session stays ended
    assert not signed_in(answer)


def test_after_sign_in_only_a_portal_path_is_followed(server, keys):
    http = requests.Session()
    token = form_token(http, f"{server.url}/portal/sign-in")
    for target, landing in (("//evil.example/x", "/portal/"), ("https://evil.example/", "/portal/"),
                            ("/portal/upload", "/portal/upload")):
        answer = http.post(f"{server.url}/portal/sign-in", params={"next": target}, allow_redirects=False,
                           data={"csrf_token": token, "operator": "northtel", "key": keys["northtel"]})
        assert answer.headers["Location"] == landing


@pytest.mark.parametrize("query", ["tlp=purple", "type=no%20such%20type", "from=2026-13-01", "before=-5",
                                   "before=99999999999999999999", "until=yesterday"])
def test_bad_filters_get_400_not_an_error(server, keys, query):
    answer = sign_in(server.url, "northtel", keys["northtel"])
    page = answer.http.get(f"{server.url}/portal/collections/advisories/?{query}")
    assert page.status_code == 400 and "<h1>Bad Request</h1>" in page.text


def test_pages_refuse_what_the_api_refuses(server, keys):
    answer = sign_in(server.url, "southwave", keys["southwave"])
    http = answer.http
    assert http.get(f"{server.url}/portal/collections/northtel-reports/").status_code == 404
    assert http.get(f"{server.url}/portal/collections/no-such-collection/").status_code == 404
    assert http.get(f"{server.url}/portal/publish").status_code == 403
    assert http.get(f"{server.url}/portal/collections/advisories/objects/indicator--{'0' * 8}-0000-4000-8000-"
                    f"{'0' * 12}/").status_code == 404


def test_the_api_still_takes_posts_without_form_tokens(northtel):
    assert northtel.post("/collections/community/objects/", envelope(indicator(1))).status_code == 202


def test_the_portal_is_no_way_around_the_api_key_for_taxii(server, keys):
    answer = sign_in(server.url, "northtel", keys["northtel"])
    assert answer.http.get(f"{server.url}/api/collections/", headers={"Accept": TAXII}).status_code == 401


# -- the listing walks a bounded number of versions per page --------------------------------------------------

def test_a_page_stops_after_its_scan_budget_and_continues_from_there(store, regulator):
    rare = {**indicator(500), "name": "the rare one"}
    assert regulator.post(f"/collections/{ADVISORIES}/objects/", envelope(rare)).status_code == 202
    batch = [indicator(n) for n in range(1, 31)]
    assert regulator.post(f"/collections/{ADVISORIES}/objects/", envelope(*batch)).status_code == 202
    wanted = Filters(text="rare")
    first = list_objects(store, ADVISORIES, wanted, scan_budget=20)
    assert (first.items, first.scanned, first.budget_spent) == ([], 20, True)
    second = list_objects(store, ADVISORIES, wanted, before=first.next_before, scan_budget=20)
    assert [item.obj["name"] for item in second.items] == ["the rare one"]
    assert second.next_before is None  # the walk reached the start of the collection


def test_unfiltered_pages_go_newest_first_with_no_gap_and_no_repeat(store, regulator):
    assert regulator.post(f"/collections/{ADVISORIES}/objects/",
                          envelope(*[indicator(n) for n in range(1, 8)])).status_code == 202
    seen, before = [], None
    while True:
        page = list_objects(store, ADVISORIES, Filters(), before=before, page_size=3)
        seen += [item.record.object_id for item in page.items]
        if page.next_before is None:
            break
        before = page.next_before
    assert seen == [indicator(n)["id"] for n in range(7, 0, -1)]
    assert listing.PAGE_SIZE >= 3


def test_the_audit_trail_names_the_key_behind_each_page(app, server, store, settings):
    key = issue_key(store, settings.secret, "northtel", label="analyst j")
    answer = sign_in(server.url, "northtel", key.raw_key)
    assert answer.http.get(f"{server.url}/portal/collections/advisories/").status_code == 200
    app.extensions["taxii"].bookkeeper.flush()  # reads are written to the trail in batches
    [page] = [event for event in store.query_audit(operator_id="northtel")
              if event.path == "/portal/collections/advisories/"]
    assert (page.key_id, page.status, page.collection_id) == (key.record.key_id, 200, ADVISORIES)


def test_pages_count_against_the_keys_requests_a_minute(settings, store, keys):
    live = LiveServer(create_app(dataclasses.replace(settings, requests_per_minute=3), store))
    try:
        answer = sign_in(live.url, "northtel", keys["northtel"])
        pages = [answer.http.get(f"{live.url}/portal/") for _ in range(4)]
        assert [page.status_code for page in pages] == [200, 200, 200, 429]
        assert int(pages[-1].headers["Retry-After"]) > 0 and "Too many requests" in pages[-1].text
    finally:
        live.stop()


def test_home_counts_what_was_added_since_the_keys_last_visit(server, keys, regulator):
    assert regulator.post(f"/collections/{ADVISORIES}/objects/", envelope(indicator(1), indicator(2))).status_code == 202
    first = sign_in(server.url, "northtel", keys["northtel"])
    home = first.http.get(f"{server.url}/portal/").text
    assert "Your first visit" in home and "2 newest" in home
    time.sleep(0.01)
    assert regulator.post("/collections/community/objects/", envelope(indicator(3))).status_code == 202
    second = sign_in(server.url, "northtel", keys["northtel"])
    home = second.http.get(f"{server.url}/portal/").text
    assert "Since your last visit" in home and "1 new" in home and indicator(3)["name"] in home
    quiet = home[home.index('id="quiet"'):]
    assert "Regulator advisories" in quiet and "Community sharing" not in quiet
