"""STIX identities: each operator's, and each anonymous collection's own.

An operator's identity is declared in config.yaml (`identity:`) or derived from
its id, so that it never changes while the id does not. Derived ids are
name-based UUIDs (version 5), which STIX accepts for any object id.
"""

from __future__ import annotations

import uuid

from ..config import Collection, Operator, Settings

# Fixed for ever: changing it would change every derived identity.
_NAMESPACE = uuid.UUID("5b2c51c6-8d0e-4c47-9f6e-3f3b1d0c7a21")


def identity_of(operator: Operator) -> str:
    return operator.identity or f"identity--{uuid.uuid5(_NAMESPACE, f'operator/{operator.id}')}"


def anonymous_identity(collection: Collection) -> str:
    """What stands for every submitter in an anonymous collection."""
    return f"identity--{uuid.uuid5(_NAMESPACE, f'anonymous/{collection.id}')}"


# Identity objects the server publishes never change: one fixed version each.
_PUBLISHED_VERSION = "2020-01-01T00:00:00.000Z"


def identity_object(identity_id: str, name: str, identity_class: str, description: str) -> dict:
    return {"type": "identity", "spec_version": "2.1", "id": identity_id, "created": _PUBLISHED_VERSION,
            "modified": _PUBLISHED_VERSION, "name": name, "identity_class": identity_class, "description": description}


def anonymous_identity_object(collection: Collection) -> dict:
    """What a reader finds behind the anonymous `created_by_ref`s: SOC tools resolve references."""
    return identity_object(anonymous_identity(collection), f"Anonymous contributor to {collection.title}", "unknown",
                           "Stands for whichever operator contributed an object to this collection.")


def operator_identity_object(operator: Operator) -> dict:
    return identity_object(identity_of(operator), operator.name, "organization", f"{operator.name} ({operator.role})")


def operators_by_identity(settings: Settings) -> dict[str, Operator]:
    """Which identity is whose. Built once per request: hundreds of operators are many to hash per object."""
    return {identity_of(op): op for op in settings.operators.values()}
