"""`taxii-server feeds ...`: build the feed entries ahead of the first request, and read the feed report."""

from __future__ import annotations

from contextlib import closing

import click
import orjson

from ..cli import with_config
from ..config import Settings
from ..storage import open_store
from .index import FeedIndex
from .report import feed_report, summarize


@click.group(help="Firewall feeds (/feeds/<collection>/<list>): build their entries, report what they held back.")
def feeds():
    pass


@feeds.command(help="Bring every collection's feed entries up to date. Feed requests do this themselves, but the "
                    "first build of a large collection reads every indicator once: run this before pointing "
                    "firewalls at a server that already holds many.")
@with_config
def refresh(settings: Settings):
    with closing(open_store(settings.storage_url)) as store:
        index = FeedIndex(store, settings.feed_rules)
        for collection in settings.collections:
            with click.progressbar(length=1, label=f"{collection.title:<40}") as bar:
                index.refresh(collection.id)
                bar.update(1)


@feeds.command(help="What the feeds hold back (safety rules, invalid values) or leave out (patterns that are "
                    "not plain comparisons), and why: indicators valid now only.")
@click.option("--collection", "collection_ref", help="Only this collection (id or alias).")
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(1), help="Rows per collection and kind.")
@click.option("--json", "as_json", is_flag=True, help="The rows and counts as JSON.")
@with_config
def report(settings: Settings, collection_ref: str | None, limit: int, as_json: bool):
    collections = settings.collections
    if collection_ref is not None:
        chosen = settings.collection(collection_ref)
        if chosen is None:
            raise click.ClickException(f"no collection {collection_ref!r}")
        collections = (chosen,)
    with closing(open_store(settings.storage_url)) as store:
        rows = feed_report(FeedIndex(store, settings.feed_rules), collections, limit=limit)
    if as_json:
        click.echo(orjson.dumps({"rows": [row.as_dict() for row in rows], "summary": summarize(rows)},
                                option=orjson.OPT_INDENT_2).decode())
        return
    for count in summarize(rows):
        click.echo(f"{count['count']:>7}  {count['collection']}: {count['outcome']}: {count['reason']}")
    if rows:
        click.echo("")
    for row in rows:
        value = repr(row.value) if row.value else "-"  # repr: a value held back as invalid may hold anything
        click.echo(f"{row.collection_title}\t{row.outcome}\t{row.indicator_id}\t{row.kind or '-'}\t{value}\t{row.reason}")
