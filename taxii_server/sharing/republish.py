"""The regulator republishing a licensee's report as an object of its own.

`publish` reads the latest version of an object in one collection and stores
a new object in another: a new id, `created_by_ref` the regulator's identity,
the same pattern or content, its markings carried over (an unmarked object
gets its collection's default TLP as an explicit marking: never lowered), and
personal data scrubbed from free text. The licensees who submitted it are
hidden as in an anonymous collection (anonymity.py). The source stays where
it was.

The new id is derived from the source, the two collections and the server
secret: publishing the same report again adds a version of the same
advisory, and nobody without the secret can tell the source from the id.
Provenance (provenance.py) links the two for the regulator.

TLP:RED and TLP:AMBER+STRICT sources may not be redistributed, and are refused.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass, replace

import orjson

from ..auth import Principal
from ..config import Collection, Settings
from ..policy import access, can_republish
from ..storage.base import Store
from ..timestamps import format_timestamp, now_micros
from ..validation import Rejected, check_object
from . import anonymity, tlp
from .identities import identity_of, operator_identity_object
from .scrubbing import personal_data_scrubber, scrub_object
from .screening import screen, store_screened

# Carried over as they are: the content the regulator republishes.
_KEEP = frozenset({"pattern", "hashes", "value"})
_NOT_REPUBLISHED = frozenset({"identity", "marking-definition", "extension-definition", "language-content"})


class PublishRefused(Exception):
    """The object cannot be republished; the message says why."""


@dataclass(frozen=True)
class Published:
    object_id: str
    version: str
    collection: Collection


def publish(settings: Settings, store: Store, principal: Principal, object_id: str, source: Collection,
            target: Collection, now: int | None = None) -> Published:
    now = now_micros() if now is None else now
    _check_rights(principal, source, target)
    records = store.object_versions(source.id, object_id)
    if not records:
        raise PublishRefused(f"no object {object_id} in collection {source.alias or source.id}")
    latest = records[-1]
    item = orjson.loads(latest.body)
    _check_republishable(item, source, target)
    new_id = derived_object_id(settings, object_id, source, target)
    earlier = store.object_versions(target.id, new_id)
    advisory = _as_regulator_object(settings, item, source, principal, new_id,
                                    orjson.loads(earlier[0].body)["created"] if earlier else format_timestamp(now),
                                    format_timestamp(now), {r.submitter for r in records if r.submitter})
    screening = screen(settings, principal, target, [advisory], now,
                       derived_from=f"{source.id}/{object_id}/{latest.version}")
    refused = next((item for item in screening.checked if isinstance(item, Rejected)), None)
    if refused is not None:
        raise PublishRefused(refused.message)
    # Readers' tools resolve created_by_ref: the regulator's identity is published alongside.
    publisher = check_object(operator_identity_object(principal.operator))
    (outcome,) = store_screened(store, target, replace(screening, stand_ins=(*screening.stand_ins, publisher)))
    if outcome.conflict:
        raise PublishRefused(outcome.conflict)
    return Published(outcome.object_id, outcome.version, target)


def derived_object_id(settings: Settings, object_id: str, source: Collection, target: Collection) -> str:
    kind = object_id.partition("--")[0]
    digest = hmac.new(settings.secret, f"republish/{source.id}/{object_id}/{target.id}".encode(),
                      hashlib.sha256).digest()
    return f"{kind}--{uuid.UUID(bytes=digest[:16], version=4)}"


def _check_rights(principal: Principal, source: Collection, target: Collection) -> None:
    if not can_republish(principal.operator):
        raise PublishRefused("only the regulator republishes objects")
    if not access(principal.operator, source).can_read:
        raise PublishRefused(f"you may not read collection {source.alias or source.id}")
    if not access(principal.operator, target).can_write:
        raise PublishRefused(f"you may not write to collection {target.alias or target.id}")


def _check_republishable(item: dict, source: Collection, target: Collection) -> None:
    if item.get("type") in _NOT_REPUBLISHED or "created" not in item:
        raise PublishRefused(f"a {item.get('type')} object is not republished: only domain objects, "
                             "relationships and sightings are")
    level = tlp.level_in(item, source)
    if level is not None and level >= tlp.NOT_REDISTRIBUTABLE:
        raise PublishRefused(f"the object is marked {tlp.label(level)}: TLP:AMBER+STRICT and TLP:RED material "
                             "may not be redistributed")


def _as_regulator_object(settings: Settings, item: dict, source: Collection, principal: Principal, new_id: str,
                         created: str, modified: str, submitters: set[str]) -> dict:
    regulator_identity = identity_of(principal.operator)
    advisory = dict(item)
    if tlp.marked_level(item) is None:  # the level it counted as in its collection becomes explicit
        advisory["object_marking_refs"] = [tlp.TLP2_MARKINGS[tlp.level_in(item, source)]]
    for operator_id in sorted(submitters - {principal.operator.id}):
        operator = settings.operators.get(operator_id)
        if operator is not None:
            identities = anonymity.submitter_identities(operator, [item])
            advisory = anonymity.hide(advisory, operator, identities, regulator_identity).item
    advisory = scrub_object(advisory, personal_data_scrubber(settings.sharing.scrub_rules), keep=_KEEP)
    advisory.update(id=new_id, created=created, modified=modified, created_by_ref=regulator_identity)
    return advisory
