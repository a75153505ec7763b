"""What the sharing-rule suites share: a deployment whose licensees have contact data
configured, the TLP marking ids, and small STIX builders."""

from __future__ import annotations

import uuid

from conftest import OPERATORS, write_config

NORTHTEL_CONTACT = {"aliases": ["NorthTel Communications", "NT-SOC"], "emails": ["soc@northtel.example"],
                    "phones": ["+44 20 7946 0958"]}
OPERATORS_WITH_CONTACTS = [{**op, **NORTHTEL_CONTACT} if op["id"] == "northtel" else op for op in OPERATORS]

TLP2 = {
    "clear": "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    "green": "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    "amber": "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    "amber+strict": "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    "red": "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}
TLP1 = {
    "white": "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9",
    "green": "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
    "amber": "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82",
    "red": "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed",
}


def config_with_contacts(folder, storage_url, **overrides):
    return write_config(folder, storage=storage_url, operators=OPERATORS_WITH_CONTACTS, **overrides)


def identity(identity_id: str, name: str) -> dict:
    return {"type": "identity", "spec_version": "2.1", "id": identity_id, "created": "2026-01-01T00:00:00.000Z",
            "modified": "2026-01-01T00:00:00.000Z", "name": name, "identity_class": "organization"}


def report(n: int, object_refs: list[str], **extra) -> dict:
    return {"type": "report", "spec_version": "2.1", "id": f"report--{uuid.UUID(int=n, version=4)}",
            "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
            "name": f"report {n}", "published": "2026-01-01T00:00:00.000Z", "object_refs": object_refs, **extra}


def status_details(response) -> tuple[list[dict], list[dict]]:
    body = response.json()
    return body.get("successes", []), body.get("failures", [])
