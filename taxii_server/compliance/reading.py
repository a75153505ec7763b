"""Reading what licensees report: new versions in their private collections,
and where the objects they name are held."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import orjson

from ..config import Collection, Operator, Settings
from ..storage.base import ObjectQuery, Store, VersionFilter
from . import scope

TAIL_PAGE = 500
# The types whose versions are parsed; the others are passed over by their stored type.
REPORTED_TYPES = frozenset({"opinion", "note", "sighting"})


@dataclass(frozen=True)
class ReportedObject:
    collection_id: str
    version: str
    received_at: int  # its date_added
    body: dict


class Exchange:
    """The configuration and the store, seen from the compliance records."""

    def __init__(self, settings: Settings, store: Store):
        self.settings, self.store = settings, store
        self._published: dict[str, tuple[Collection, ...]] = {}
        self._readable: dict[str, tuple[Collection, ...]] = {}

    @cached_property
    def private_collections(self) -> dict[str, Operator]:
        return scope.private_collections(self.settings)

    def published_to(self, operator: Operator) -> tuple[Collection, ...]:
        if operator.id not in self._published:
            self._published[operator.id] = scope.published_to(self.settings, operator)
        return self._published[operator.id]

    def readable_by(self, operator: Operator) -> tuple[Collection, ...]:
        if operator.id not in self._readable:
            self._readable[operator.id] = scope.readable_by(self.settings, operator)
        return self._readable[operator.id]

    def holding(self, object_id: str, collections: tuple[Collection, ...]) -> list[Collection]:
        return [c for c in collections if self.store.object_exists(c.id, object_id)]

    def same_creator(self, obj: dict, collection_id: str, object_id: str) -> bool:
        """True when `obj` and the latest version of `object_id` share a `created_by_ref`."""
        creator = obj.get("created_by_ref")
        if not creator:
            return False
        page = self.store.query(ObjectQuery(collection_id=collection_id, limit=1, object_id=object_id))
        return bool(page.records) and orjson.loads(page.records[0].body).get("created_by_ref") == creator

    def new_reports(self, collection_id: str) -> Iterator[list[ReportedObject]]:
        """Pages of the versions of REPORTED_TYPES stored since the collection's cursor;
        the cursor moves past a page when the caller asks for the next one, after recording it."""
        position = self.store.compliance_cursor(collection_id)
        while True:
            page = self.store.query(ObjectQuery(collection_id=collection_id, limit=TAIL_PAGE,
                                                versions=VersionFilter.every(), spec_versions=(),
                                                after_position=position))
            if not page.records:
                return
            yield [ReportedObject(collection_id, r.version, r.date_added, orjson.loads(r.body))
                   for r in page.records if r.type in REPORTED_TYPES]
            position = page.records[-1].date_added
            self.store.advance_compliance_cursor(collection_id, position)
            if not page.more:
                return
