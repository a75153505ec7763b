"""MISP's TAXII 2.1 import module, replayed with the real taxii2-client.

Follows MISP/misp-modules `misp_modules/modules/import_mod/taxii21.py`
(`_get_config`, `_query_taxii`): `taxii2client.Collection(url, user=, password=)` on
the collection URL (HTTP Basic), `as_pages(collection.get_objects, per_request=
min(100, limit))` with `spec_version="2.1"` (the module forces it) and the
`added_after` the user typed, and at most `stix_object_limit` (1,000 by default)
objects an import. The module keeps no bookmark: for each import the user enters
the time the previous one ended, to the millisecond.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import taxii2client
from soc_rounds import Publisher, WireLog, check_three_rounds

from conftest import ADVISORIES


pytestmark = pytest.mark.every_backend

PAGE_SIZE, STIX_OBJECT_LIMIT = 100, 1000


class MispTaxii21Import:
    def __init__(self, url: str, username: str, password: str, wire: WireLog):
        self.url, self.username, self.password, self.wire = url, username, password, wire
        self.previous_import_ended: str | None = None

    def run_import(self) -> list[str]:
        """One import, as the user starts it from MISP's import page."""
        collection = taxii2client.Collection(self.url, user=self.username, password=self.password)
        self.wire.attach(collection._conn.session)
        kwargs = {"per_request": min(PAGE_SIZE, STIX_OBJECT_LIMIT), "spec_version": "2.1"}
        if self.previous_import_ended:
            kwargs["added_after"] = self.previous_import_ended
        pages = taxii2client.as_pages(collection.get_objects, **kwargs)
        objects = (obj for envelope in pages for obj in envelope.get("objects", []))
        taken = [obj["id"] for _, obj in zip(range(STIX_OBJECT_LIMIT), objects)]
        self.previous_import_ended = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        return taken


def test_misp_imports_each_object_once(server, regulator, keys):
    wire = WireLog()
    misp = MispTaxii21Import(f"{server.url}/api/collections/{ADVISORIES}/", "northtel", keys["northtel"], wire)
    check_three_rounds(Publisher(regulator), misp.run_import)
    wire.assert_every_page("Basic", limit=str(PAGE_SIZE), **{"match[spec_version]": "2.1"})
