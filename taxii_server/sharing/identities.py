"""STIX identities: each operator's, and each anonymous collection's own.

An operator's identity is declared in config.yaml (`identity:`) or derived from
its id, so that it never changes while the id does not. Derived ids are
name-based UUIDs (version 5), which STIX accepts for any object id.
"""

from __future__ import annotations

import functools
import uuid

from ..config import Collection, Operator, Settings

# Fixed for ever: changing it would change every derived identity.
_NAMESPACE = uuid.UUID("5b2c51c6-8d0e-4c47-9f6e-3f3b1d0c7a21")


def identity_of(operator: Operator) -> str:
    return operator.identity or f"identity--{uuid.uuid5(_NAMESPACE, f'operator/{operator.id}')}"


def anonymous_identity(collection: Collection) -> str:
    """What stands for every submitter in an anonymous collection."""
    return f"identity--{uuid.uuid5(_NAMESPACE, f'anonymous/{collection.id}')}"


def operator_with_identity(settings: Settings, identity) -> Operator | None:
    """The operator whose identity this is, if any."""
    return _operators_by_identity(tuple(settings.operators.values())).get(identity) if isinstance(identity, str) else None


@functools.lru_cache(maxsize=4)
def _operators_by_identity(operators: tuple[Operator, ...]) -> dict[str, Operator]:
    return {identity_of(op): op for op in operators}
