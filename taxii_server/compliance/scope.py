"""Which collections each compliance record is about, decided from the
collections' declarations and policy.py alone."""

from __future__ import annotations

from ..config import Collection, Operator, Settings
from ..policy import access


def licensees(settings: Settings) -> list[Operator]:
    return [operator for operator in settings.operators.values() if operator.role == "licensee"]


def private_collections(settings: Settings) -> dict[str, Operator]:
    """Tracked collections that exactly one licensee may read and write, and no
    other licensee may read: where that licensee reports to the regulator."""
    owners: dict[str, Operator] = {}
    everyone = licensees(settings)
    for collection in settings.collections:
        if not collection.track_deliveries:
            continue
        readers = [op for op in everyone if access(op, collection).can_read]
        if len(readers) == 1 and access(readers[0], collection).can_write:
            owners[collection.id] = readers[0]
    return owners


def published_to(settings: Settings, operator: Operator) -> tuple[Collection, ...]:
    """Tracked collections the operator reads but may not write: what is published
    to it, and what it acknowledges (the advisories)."""
    return tuple(collection for collection in settings.collections if collection.track_deliveries
                 and access(operator, collection).can_read and not access(operator, collection).can_write)


def readable_by(settings: Settings, operator: Operator) -> tuple[Collection, ...]:
    return tuple(collection for collection in settings.collections if access(operator, collection).can_read)


def tracked(settings: Settings) -> tuple[Collection, ...]:
    return tuple(collection for collection in settings.collections if collection.track_deliveries)
