"""The administrators' sharing commands: `provenance`, `publish`, and `operators --json`."""

from __future__ import annotations

import click
import orjson

from ..auth import Principal
from ..cli import with_config
from ..config import Collection, Operator, Settings
from ..policy import can_republish
from ..storage import open_store
from ..timestamps import format_timestamp
from .identities import identity_of
from .provenance import provenance as object_provenance
from .republish import PublishRefused, publish as republish

# The key id recorded for what the administrators store through the command line.
CLI_KEY_ID = "cli"


def operators_json(settings: Settings) -> str:
    return orjson.dumps([{"id": op.id, "name": op.name, "role": op.role, "identity": identity_of(op)}
                         for op in settings.operators.values()], option=orjson.OPT_INDENT_2).decode()


@click.command(help="List each stored version of OBJECT_ID with the operator that submitted it, when, and with "
                    "which key id, in every collection (or one); and what it was republished as. For "
                    "administrators and the regulator only.")
@click.argument("object_id")
@click.option("--collection", "collection_ref", help="Only this collection (id or alias).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@with_config
def provenance(settings: Settings, object_id: str, collection_ref: str | None, as_json: bool):
    collection = _collection(settings, collection_ref) if collection_ref else None
    found = object_provenance(settings, open_store(settings.storage_url), object_id, collection)
    if not found.versions:
        raise click.ClickException(f"no version of {object_id} is stored"
                                   + (f" in {collection_ref}" if collection_ref else ""))
    if as_json:
        click.echo(orjson.dumps(found.as_json(), option=orjson.OPT_INDENT_2).decode())
        return
    click.echo(f"{'COLLECTION':<20}{'VERSION':<29}{'DATE ADDED':<29}{'SUBMITTER':<16}{'KEY ID':<16}DERIVED FROM")
    for v in found.versions:
        click.echo(f"{v.collection:<20}{v.version:<29}{format_timestamp(v.date_added):<29}"
                   f"{v.submitter or '(unrecorded)':<16}{v.key_id or '-':<16}{v.derived_from or '-'}")
    for r in found.republished_as:
        click.echo(f"republished as {r.object_id} in {r.collection}")


@click.command(help="Republish OBJECT_ID from a licensee's collection as a new object of the regulator's: a new id, "
                    "created_by_ref the regulator's identity, markings carried over, personal data scrubbed. "
                    "Prints the new id. Refused for TLP:RED and TLP:AMBER+STRICT sources.")
@click.argument("object_id")
@click.option("--from", "source_ref", required=True, help="The collection it is in (id or alias).")
@click.option("--to", "target_ref", required=True, help="The collection to publish it in (id or alias).")
@click.option("--as", "operator_id", help="The regulator operator to publish as (default: the regulator).")
@with_config
def publish(settings: Settings, object_id: str, source_ref: str, target_ref: str, operator_id: str | None):
    principal = Principal(_publisher(settings, operator_id), CLI_KEY_ID)
    try:
        published = republish(settings, open_store(settings.storage_url), principal, object_id,
                               _collection(settings, source_ref), _collection(settings, target_ref))
    except PublishRefused as exc:
        raise click.ClickException(f"not republished: {exc}") from None
    click.echo(f"published version {published.version} in {published.collection.alias or published.collection.id}",
               err=True)
    click.echo(published.object_id)


def _collection(settings: Settings, ref: str) -> Collection:
    collection = settings.collection(ref)
    if collection is None:
        raise click.ClickException(f"no collection {ref!r}")
    return collection


def _publisher(settings: Settings, operator_id: str | None) -> Operator:
    candidates = [op for op in settings.operators.values()
                  if can_republish(op) and operator_id in (None, op.id)]
    if len(candidates) != 1:
        raise click.ClickException(f"name the regulator to publish as with --as (it may not be {operator_id!r})"
                                   if operator_id or candidates else "no operator may republish")
    return candidates[0]
