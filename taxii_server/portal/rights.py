"""Which collections the signed-in operator may use in the portal, asked of
policy.py: the portal keeps no rule of its own, so a page shows exactly what
the operator's key could fetch over TAXII."""

from __future__ import annotations

from werkzeug.exceptions import Forbidden, NotFound

from ..config import Collection, Operator, Settings
from ..policy import access


def readable_collections(settings: Settings, operator: Operator) -> list[Collection]:
    return [c for c in settings.collections if access(operator, c).can_read]


def writable_collections(settings: Settings, operator: Operator) -> list[Collection]:
    return [c for c in settings.collections if access(operator, c).can_write]


def readable_collection(settings: Settings, operator: Operator, id_or_alias: str) -> Collection:
    """The collection; 404 when the operator cannot see it (as over TAXII), 403 when it may only write."""
    return _visible_with(settings, operator, id_or_alias, "can_read",
                         "You may add objects to this collection but not read it.")


def writable_collection(settings: Settings, operator: Operator, id_or_alias: str) -> Collection:
    """The collection; 404 when the operator cannot see it, 403 when it may only read."""
    return _visible_with(settings, operator, id_or_alias, "can_write", "You may not add objects to this collection.")


def _visible_with(settings: Settings, operator: Operator, id_or_alias: str, right: str, refusal: str) -> Collection:
    collection = settings.collection(id_or_alias)
    rights = access(operator, collection) if collection else None
    if rights is None or not rights.visible:
        raise NotFound("No such collection, or you have no access to it.")
    if not getattr(rights, right):
        raise Forbidden(refusal)
    return collection


def read_by_everyone(settings: Settings, collection: Collection) -> bool:
    return all(access(op, collection).can_read for op in settings.operators.values())


def broadcast_destinations(settings: Settings, operator: Operator) -> list[Collection]:
    """Collections the operator writes that every operator reads."""
    return [c for c in writable_collections(settings, operator) if read_by_everyone(settings, c)]


def private_collections_by_licensee(settings: Settings) -> dict[str, list[Collection]]:
    """Each licensee's private collections: those it writes and no other licensee reads,
    where its reports and acknowledgements go and the regulator's directed alerts to it.
    One pass over collections x licensees; callers keep the result while the settings hold."""
    licensees = [op for op in settings.operators.values() if op.role == "licensee"]
    private: dict[str, list[Collection]] = {}
    for collection in settings.collections:
        readers = [op for op in licensees if access(op, collection).can_read]
        if len(readers) == 1 and access(readers[0], collection).can_write:
            private.setdefault(readers[0].id, []).append(collection)
    return private


def directed_destinations(settings: Settings, operator: Operator,
                          private: dict[str, list[Collection]]) -> list[tuple[Operator, Collection]]:
    """For a directed alert: each other licensee's private collection that the operator writes."""
    return [(settings.operators[licensee_id], collection) for licensee_id, collections in private.items()
            if licensee_id != operator.id for collection in collections if access(operator, collection).can_write]
