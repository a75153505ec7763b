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
    collection = settings.collection(id_or_alias)
    rights = access(operator, collection) if collection else None
    if rights is None or not rights.visible:
        raise NotFound("No such collection, or you have no access to it.")
    if not rights.can_read:
        raise Forbidden("You may add objects to this collection but not read it.")
    return collection


def writable_collection(settings: Settings, operator: Operator, id_or_alias: str) -> Collection:
    collection = settings.collection(id_or_alias)
    rights = access(operator, collection) if collection else None
    if rights is None or not rights.visible:
        raise NotFound("No such collection, or you have no access to it.")
    if not rights.can_write:
        raise Forbidden("You may not add objects to this collection.")
    return collection


def readers_among_licensees(settings: Settings, collection: Collection) -> list[Operator]:
    return [op for op in settings.operators.values() if op.role == "licensee" and access(op, collection).can_read]


def read_by_everyone(settings: Settings, collection: Collection) -> bool:
    return all(access(op, collection).can_read for op in settings.operators.values())


def private_collections(settings: Settings, licensee: Operator) -> list[Collection]:
    """Collections the licensee writes and no other licensee reads: where its reports and acknowledgements go."""
    return [c for c in writable_collections(settings, licensee)
            if [op.id for op in readers_among_licensees(settings, c)] == [licensee.id]]


def broadcast_destinations(settings: Settings, operator: Operator) -> list[Collection]:
    """Collections the operator writes that every operator reads."""
    return [c for c in writable_collections(settings, operator) if read_by_everyone(settings, c)]


def directed_destinations(settings: Settings, operator: Operator) -> list[tuple[Operator, Collection]]:
    """For a directed alert: each licensee's private collection that the operator writes."""
    return [(licensee, c) for licensee in settings.operators.values() if licensee.role == "licensee"
            and licensee.id != operator.id for c in private_collections(settings, licensee)
            if access(operator, c).can_write]
