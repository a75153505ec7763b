"""Who stored each version of an object, when and with which key, in every collection it is in.

For the regulator and the server's administrators only: licensees never see
it. A republished object's versions name the version they were made from, and
an object that was republished names what it became.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Collection, Settings
from ..storage.base import Store
from .republish import derived_object_id


@dataclass(frozen=True)
class VersionProvenance:
    collection_id: str
    collection: str          # alias, else id
    version: str
    date_added: int
    submitter: str | None    # operator id; None when stored before submitters were recorded
    key_id: str | None
    derived_from: str | None  # "<collection id>/<object id>/<version>" of a republished object's source


@dataclass(frozen=True)
class Republication:
    collection_id: str
    collection: str
    object_id: str


@dataclass(frozen=True)
class Provenance:
    object_id: str
    versions: list[VersionProvenance]
    republished_as: list[Republication]

    def as_json(self) -> dict:
        return {"object_id": self.object_id,
                "versions": [vars(v) for v in self.versions],
                "republished_as": [vars(r) for r in self.republished_as]}


def provenance(settings: Settings, store: Store, object_id: str, collection: Collection | None = None) -> Provenance:
    searched = (collection,) if collection is not None else settings.collections
    versions, republished = [], []
    for source in searched:
        records = store.object_versions(source.id, object_id)
        versions += [VersionProvenance(source.id, _name(source), r.version, r.date_added, r.submitter,
                                       r.submitter_key, r.derived_from) for r in records]
        if not records:
            continue
        for target in settings.collections:
            derived = derived_object_id(settings, object_id, source, target)
            if store.object_exists(target.id, derived):
                republished.append(Republication(target.id, _name(target), derived))
    return Provenance(object_id, versions, republished)


def _name(collection: Collection) -> str:
    return collection.alias or collection.id
