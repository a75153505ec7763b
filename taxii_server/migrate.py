"""Copying one store into another, e.g. SQLite into MongoDB (`taxii-server migrate`).

What is copied, in this order:

- every version of every collection, in `date_added` order and under its own
  `date_added`: the positions pollers hold (`added_after`, `next` tokens) keep
  their meaning in the new store, and the destination's clock moves past the
  last copied version, so its new writes come after every copied one;
- every status resource;
- every API key and client certificate, each record replaced whole, so that a
  revocation or an expiry changed in the source since an earlier run reaches
  the destination. The source is the authority until the cut-over: a key
  changed in the destination alone is overwritten.

A second run copies only what the first did not: versions and statuses already
held are skipped. A migration can therefore be run while the source still
serves, then once more after it stops taking writes, just before the cut-over.

The destination should be empty, or written by this command only. A version
copied behind versions the destination stored itself would sit before
positions its pollers have already passed, and they would never see it: the
store refuses it. That, or a destination holding other content under a copied
version's id and version, stops the migration with StoreConflict; that batch
stores nothing.

The audit trail is not copied. It is append-only and its events have no id, so
a second run could not tell which events the destination already holds and
would write them twice. It stays in the source store: keep that store for as
long as the trail must be kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .storage.base import Store

DEFAULT_BATCH = 1000


@dataclass
class MigrationReport:
    versions_copied: int = 0
    versions_present: int = 0  # already held by the destination, with the same content
    statuses_copied: int = 0
    statuses_present: int = 0
    keys: int = 0  # API keys written, new or brought up to date
    client_certs: int = 0


def versions_to_copy(source: Store) -> int:
    """How many versions the source holds: the length of a progress bar.

    The bar counts versions only. They are nearly all of the data and the store
    can count them; statuses could be counted only by reading them all once more.
    """
    return sum(source.count_versions(collection_id) for collection_id in source.collection_ids())


def copy_store(source: Store, destination: Store, progress: Callable[[int], None] | None = None,
               batch: int = DEFAULT_BATCH) -> MigrationReport:
    """Copy everything but the audit trail from `source` into `destination`.

    `progress` is called after each batch of versions with how many it held,
    copied or already present. Raises StoreConflict when the destination holds
    other content under a copied version's id and version, or when a copied
    version would sit behind what the destination's collection already holds.
    """
    report = MigrationReport()
    for collection_id in source.collection_ids():
        position = None  # keyset paging: the last date_added copied
        while records := source.export_versions(collection_id, position, batch):
            copied = destination.import_versions(collection_id, records)
            report.versions_copied += copied
            report.versions_present += len(records) - copied
            position = records[-1].date_added
            if progress is not None:
                progress(len(records))

    last_status_id = None
    while statuses := source.export_statuses(last_status_id, batch):
        copied = destination.import_statuses(statuses)
        report.statuses_copied += copied
        report.statuses_present += len(statuses) - copied
        last_status_id = statuses[-1].id

    for key in source.list_keys():
        destination.put_key(key)
        report.keys += 1
    for certificate in source.list_client_certs():
        destination.put_client_cert(certificate)
        report.client_certs += 1
    return report
