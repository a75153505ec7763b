"""The shortest path through the product: publish, then poll."""

from conftest import ADVISORIES, envelope, indicator


def test_regulator_publishes_and_a_licensee_polls_it(as_operator):
    regulator, licensee = as_operator("regulator"), as_operator("northtel")
    status = regulator.post(f"/collections/{ADVISORIES}/objects/", envelope(indicator(1)))
    assert status.status_code == 202
    assert status.json()["success_count"] == 1

    page = licensee.get(f"/collections/{ADVISORIES}/objects/")
    assert page.status_code == 200
    assert [o["id"] for o in page.json()["objects"]] == [indicator(1)["id"]]
