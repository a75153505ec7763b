"""The sharing rules of one write: the one entry point of every path that stores objects.

`screen` takes the caller, the collection and the objects of a request, and
returns what the store should try to store (validated `NewVersion`s) with the
per-object refusals, in request order, and the `Submission` to hand to
`Store.add_versions`, under which the store records the submitter and refuses
versions of objects another operator owns (storage/planning.py).
`store_screened` stores the result, after the identity objects it refers to
that the server publishes itself (an anonymous collection's own identity).

Per object, in this order:
1. validation as STIX 2.1 (validation.py);
2. the collection's TLP ceiling and unmarked rule (tlp.py); a `created_by_ref`
   naming another operator's identity, or another operator's identity object
   (no operator speaks for another);
3. a version more than `sharing.max_future_skew_seconds` ahead of the server's
   clock is refused: `modified: 9999-12-31T23:59:59.999Z` would stay the
   latest version for ever;
4. in an anonymous collection, a licensee's identity object is refused and
   everything else is anonymised (anonymity.py), then validated again when its
   text changed (only its identity references changing cannot make it invalid),
   and in every case stored and hashed as rewritten.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import orjson

from ..auth import Principal
from ..config import Collection, Operator, Settings
from ..storage.base import AddOutcome, AuditMaker, NewVersion, StatusMaker, Store, Submission
from ..timestamps import now_micros
from ..validation import Rejected, check_object, check_objects
from . import anonymity, tlp
from .identities import anonymous_identity, anonymous_identity_object, operators_by_identity

IDENTITY_REFUSED = ("this collection is anonymous: an identity object naming the submitter is not stored here, "
                    "and references to it are replaced by the collection's anonymous identity")
STAND_IN_REFUSED = "this identity stands for every anonymous contributor to this collection; the server publishes it"
# Who stores the identity objects the server publishes: no operator, so none can version them.
SERVER = Submission("(server)", "server")


@dataclass(frozen=True)
class Screening:
    checked: list[NewVersion | Rejected]
    submission: Submission
    # Identity objects the accepted versions refer to, which the server publishes first (store_screened).
    stand_ins: tuple[NewVersion, ...] = ()

    @property
    def accepted(self) -> list[NewVersion]:
        return [item for item in self.checked if not isinstance(item, Rejected)]


def store_screened(store: Store, collection: Collection, screening: Screening,
                   status_for: StatusMaker | None = None, audit_for: AuditMaker | None = None) -> list[AddOutcome]:
    """Store what `screen` accepted, after the identity objects it refers to (once per collection)."""
    for stand_in in screening.stand_ins:
        if not store.object_exists(collection.id, stand_in.object_id):
            store.add_versions(collection.id, [stand_in], submitted_by=SERVER)
    return store.add_versions(collection.id, screening.accepted, status_for=status_for, audit_for=audit_for,
                              submitted_by=screening.submission)


def screen(settings: Settings, principal: Principal, collection: Collection, items: list[dict],
           now: int | None = None, derived_from: str | None = None) -> Screening:
    now = now_micros() if now is None else now
    operator = principal.operator
    hides_submitter = collection.anonymous and operator.role == "licensee"
    identities = anonymity.submitter_identities(operator, items) if hides_submitter else frozenset()
    stand_in = anonymous_identity(collection) if collection.anonymous else None
    anonymiser = anonymity.Anonymiser(operator, identities, stand_in) if hides_submitter else None
    owners = operators_by_identity(settings)
    checked = []
    for item, version in zip(items, check_objects(items, settings.work)):
        if not isinstance(version, Rejected):
            version = _refused(item, version, collection, settings, operator, owners, now)
        if not isinstance(version, Rejected) and version.object_id == stand_in:
            version = Rejected(version.object_id, version.version or "unknown", STAND_IN_REFUSED)
        if not isinstance(version, Rejected) and hides_submitter:
            if anonymity.names_submitter(item, identities):
                version = Rejected(version.object_id, version.version or "unknown", IDENTITY_REFUSED)
            else:
                version = _anonymised(item, version, anonymiser)
        checked.append(version)
    referred = stand_in is not None and any(stand_in.encode() in v.body for v in checked if isinstance(v, NewVersion))
    stand_ins = (check_object(anonymous_identity_object(collection)),) if referred else ()
    return Screening(checked, Submission(operator.id, principal.key_id, derived_from), stand_ins)


def _anonymised(item: dict, version: NewVersion, anonymiser: anonymity.Anonymiser) -> NewVersion | Rejected:
    hidden = anonymiser.hide(item)
    if hidden.text_changed:  # scrubbed text may have been part of a pattern or a vocabulary: check again
        return check_object(hidden.item)
    if hidden.item == item:
        return version
    # Only identity references changed, to another identity: as valid as before, stored by its new content.
    body = orjson.dumps(hidden.item, option=orjson.OPT_SORT_KEYS)  # the canonical form check_object stores
    return NewVersion(version.object_id, version.type, version.version, version.version_key, version.spec_version,
                      hashlib.sha256(body).digest(), body)


IMPERSONATION = "created_by_ref names another operator's identity; an operator creates objects only as itself"
ANOTHERS_IDENTITY = "this is another operator's identity; only that operator publishes it"


def _refused(item: dict, version: NewVersion, collection: Collection, settings: Settings, operator: Operator,
             owners: dict[str, Operator], now: int) -> NewVersion | Rejected:
    reason = tlp.refusal(item, collection)
    creator = item.get("created_by_ref")
    creator = owners.get(creator) if isinstance(creator, str) else None
    if reason is None and creator is not None and creator.id != operator.id:
        reason = IMPERSONATION
    described = owners.get(item["id"]) if item["type"] == "identity" else None
    if reason is None and described is not None and described.id != operator.id:
        reason = ANOTHERS_IDENTITY
    skew = settings.sharing.max_future_skew
    if reason is None and version.version_key is not None and version.version_key > now + skew:
        reason = (f"'modified' (or 'created') is more than {skew // 1_000_000} seconds ahead of the server's clock; "
                  "a version from the future would stay the latest for ever")
    return version if reason is None else Rejected(version.object_id, version.version or "unknown", reason)
