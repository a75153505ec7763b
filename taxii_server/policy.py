"""Who may do what with which collection: the one place rights are decided.

A collection's declaration names its readers, writers and deleters as
`everyone`, `role:<role>` or `operator:<id>`. A collection the caller can
neither read nor write is invisible to it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import Collection, Operator


@dataclass(frozen=True)
class Access:
    can_read: bool
    can_write: bool
    can_delete: bool

    @property
    def visible(self) -> bool:
        return self.can_read or self.can_write


def access(operator: Operator, collection: Collection) -> Access:
    return Access(
        can_read=_named(operator, collection.readers),
        can_write=_named(operator, collection.writers),
        can_delete=_named(operator, collection.deleters),
    )


def _named(operator: Operator, audience: tuple[str, ...]) -> bool:
    return any(entry == "everyone"
               or entry == f"role:{operator.role}"
               or entry == f"operator:{operator.id}"
               for entry in audience)


def can_republish(operator: Operator) -> bool:
    """Turning another operator's report into one's own object, and seeing who submitted what
    (provenance): the regulator's alone."""
    return operator.role == "regulator"


def can_see_compliance(operator: Operator) -> bool:
    """Compliance records (deliveries, acknowledgements, sightings) are the regulator's alone:
    to anyone else they do not exist."""
    return operator.role == "regulator"


def reads_feed_report(operator: Operator) -> bool:
    """The feed report names what every collection's feeds held back: the regulator's alone."""
    return operator.role == "regulator"
