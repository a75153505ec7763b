"""The work one request can cause is bounded (security issue, points 1 and 4).

Over HTTP, on every backend: an envelope past `max_objects_per_envelope` is
refused whole; a pattern past the size and complexity limits is refused on
its own object before any parser reads it; objects left when a request's
validation time is spent are refused one by one, to be sent again; one
operator validates one POST at a time in a process, while other operators are
served; statuses keep bounded details and expire after the retention period.
"""

from __future__ import annotations

import threading
import uuid

import pytest

from conftest import COMMUNITY, envelope, indicator, write_config

pytestmark = pytest.mark.every_backend

OBJECTS = f"/collections/{COMMUNITY}/objects/"
LIMITS = {"max_pattern_length": 40_000, "max_pattern_operators": 150, "max_pattern_nesting": 20,
          "seconds_per_request": 0.2}
# The pattern of the attack: 2,999 ANDs, which the ANTLR parser took seconds over.
ATTACK_PATTERN = " AND ".join(["[a:b=1]"] * 3000)
# 150 ANDs: within the limits, but past what the fast checker reads, so stix2-patterns parses it.
SLOW_PATTERN = " AND ".join(["[a:b=1]"] * 151)


@pytest.fixture
def config_path(tmp_path, storage_url):
    return write_config(tmp_path, storage=storage_url, validation=LIMITS,
                        api_root={"path": "api", "title": "Test root", "max_content_length": 1_000_000,
                                  "max_objects_per_envelope": 50})


def indicators(count: int, pattern: str | None = None, first: int = 0) -> list[dict]:
    return [indicator(first + n, **({"pattern": pattern} if pattern else {})) for n in range(count)]


def test_an_envelope_past_the_object_limit_is_refused_whole_with_413(northtel):
    answer = northtel.post(OBJECTS, envelope(*indicators(51)))
    assert answer.status_code == 413
    assert "at most 50" in answer.json()["description"]
    assert "objects" not in northtel.get(OBJECTS).json()  # nothing stored
    assert northtel.post(OBJECTS, envelope(*indicators(50))).json()["success_count"] == 50


@pytest.mark.parametrize("pattern, message", [
    (ATTACK_PATTERN,
     "pattern has 2999 AND, OR and FOLLOWEDBY operators; this server accepts at most 150. Split the indicator."),
    ("[a:b = '" + "x" * 40_000 + "']",
     "pattern is 40010 characters long; this server accepts at most 40000. Split the indicator."),
    ("(" * 21 + "[a:b = 1]" + ")" * 21,
     "pattern nests parentheses 21 deep; this server accepts at most 20."),
], ids=["operators", "length", "nesting"])
def test_a_pattern_past_a_limit_is_refused_on_its_own_object(northtel, pattern, message):
    heavy, fine = indicator(1, pattern=pattern), indicator(2)
    status = northtel.post(OBJECTS, envelope(heavy, fine)).json()
    assert status["success_count"] == 1 and status["successes"][0]["id"] == fine["id"]
    assert status["failures"] == [{"id": heavy["id"], "version": heavy["modified"], "message": message}]


def test_patterns_other_than_stix_are_not_parsed_and_not_held_to_the_pattern_limits(northtel):
    rule = "rule big { strings: " + " ".join(f"$s{n} = \"x\" and" for n in range(10_000)) + " }"
    status = northtel.post(OBJECTS, envelope(indicator(1, pattern=rule, pattern_type="yara"))).json()
    assert status["success_count"] == 1


def test_operators_and_brackets_inside_string_literals_do_not_count(northtel):
    pattern = "[a:b = '" + " AND ((( [" * 100 + "']"
    status = northtel.post(OBJECTS, envelope(indicator(1, pattern=pattern))).json()
    assert status["success_count"] == 1


def test_objects_left_when_the_validation_time_is_spent_are_refused_to_be_sent_again(northtel):
    sent = indicators(40, SLOW_PATTERN)
    status = northtel.post(OBJECTS, envelope(*sent)).json()
    assert status["total_count"] == 40
    assert 1 <= status["success_count"] < 40
    # The validated objects come first; every one after them is refused, saying to send it again.
    validated = [detail["id"] for detail in status["successes"]]
    assert validated == [item["id"] for item in sent[:len(validated)]]
    assert [failure["id"] for failure in status["failures"]] == [item["id"] for item in sent[len(validated):]]
    assert all("used its 0.2 s of validation time" in failure["message"] and "send it again" in failure["message"]
               for failure in status["failures"])
    resent = northtel.post(OBJECTS, envelope(*sent[len(validated):])).json()
    assert resent["success_count"] >= 1


def test_one_operator_validates_one_post_at_a_time_while_others_are_served(northtel, southwave):
    """Two heavy POSTs of one operator at once: both are stored, one after the
    other; a third meanwhile is refused with 429; another operator is served."""
    heavy = [envelope(*indicators(50, SLOW_PATTERN, first=100 * n)) for n in (1, 2)]
    for _ in range(5):  # a round in which a probe happens to be let in proves nothing: again
        answers: dict = {}
        posting = [threading.Thread(target=lambda n=n: answers.update({n: northtel.post(OBJECTS, heavy[n])}))
                   for n in (0, 1)]
        for thread in posting:
            thread.start()
        refusals, others_served = [], []
        try:
            while any(thread.is_alive() for thread in posting) and not refusals:
                probe = northtel.post(OBJECTS, envelope(indicator(99)))
                if probe.status_code == 429:
                    refusals.append(probe)
                    others_served.append(southwave.get(OBJECTS).status_code)
        finally:
            for thread in posting:
                thread.join()
        if refusals and all(answer.status_code == 202 for answer in answers.values()):
            break
    assert [answers[n].status_code for n in (0, 1)] == [202, 202]
    assert refusals, "a third POST of the same operator was never refused while two were held"
    assert refusals[0].headers["Retry-After"] == "1"
    assert "2 requests of yours are being validated or waiting their turn" in refusals[0].json()["description"]
    assert others_served == [200]
    assert northtel.post(OBJECTS, envelope(indicator(99))).status_code == 202


def test_a_status_keeps_bounded_details_of_what_a_refused_object_claimed(northtel):
    claimed = indicator(1, modified="2026-" + "1" * 5000, id="indicator--" + "f" * 100_000)
    status = northtel.post(OBJECTS, envelope(claimed)).json()
    (failure,) = status["failures"]
    assert len(failure["id"]) == 300 and failure["id"].endswith("\u2026")
    assert len(failure["version"]) == 64
    assert len(failure["message"]) <= 300


def test_statuses_expire_after_the_retention_period(northtel, store):
    expired_id = str(uuid.uuid4())
    store.save_status(expired_id, "northtel", created=1, body=b'{"id": "%s"}' % expired_id.encode())
    assert northtel.get(f"/status/{expired_id}/").status_code == 404  # the first request purges
    fresh = northtel.post(OBJECTS, envelope(indicator(1))).json()
    assert northtel.get(f"/status/{fresh['id']}/").status_code == 200
