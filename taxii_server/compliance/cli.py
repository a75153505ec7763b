"""`taxii-server report ...`: the compliance reports on the command line.

Each reads the store named by config.yaml, brings the records up to date
first, and prints a table, CSV or JSON (`--format`).
"""

from __future__ import annotations

import csv
import itertools
import sys
from collections.abc import Callable, Iterable, Iterator

import click
import orjson

from ..config import Settings
from ..storage import open_store
from . import reports
from .service import ComplianceService

PAGE = 5000
ALL = 2 ** 62
WIDTH_SAMPLE = 1000
FORMATS = click.Choice(["table", "csv", "json"])


def register(main: click.Group, with_config: Callable) -> None:
    """Add the `report` group to the `taxii-server` command."""

    @main.group(help="Compliance reports: deliveries and acknowledgements, licensees, sightings.")
    def report():
        pass

    @report.command("delivery", help="One row per object version and licensee (delivered_at, acknowledged_at), "
                                     "then per object version how many licensees received and acknowledged it.")
    @click.option("--collection", "collection_ref", help="Only this collection (id or alias), e.g. advisories.")
    @click.option("--since", help="Only deliveries from this time on: a timestamp or a duration back (7d, 12h).")
    @click.option("--format", "output", type=FORMATS, default="table", show_default=True)
    @with_config
    def delivery(settings: Settings, collection_ref: str | None, since: str | None, output: str):
        service = _service(settings)
        collections = _collections(settings, collection_ref)
        start = _since(since)
        rows = _pages(lambda after: reports.delivery_rows(service, collections, start, after, PAGE))
        # One query: each page of the summary groups the whole table again.
        summary = _pages(lambda after: reports.delivery_summary(service, collections, start, after, ALL))
        _print({"deliveries": rows, "summary": summary}, output)

    @report.command("licensees", help="Per licensee: last request, last poll of each tracked collection, objects "
                                      "published but not yet delivered (and the oldest), acknowledgements pending.")
    @click.option("--format", "output", type=FORMATS, default="table", show_default=True)
    @with_config
    def licensees(settings: Settings, output: str):
        rows = reports.licensee_rows(_service(settings))
        _print({"licensees": rows}, output)

    @report.command("sightings", help="Per indicator: licensees that saw it, sightings, false positives, "
                                      "first and last seen.")
    @click.option("--format", "output", type=FORMATS, default="table", show_default=True)
    @with_config
    def sightings(settings: Settings, output: str):
        _print({"indicators": reports.sighting_rows(_service(settings))}, output)

    @report.command("acknowledgements", help="Every acknowledgement with its status "
                                             "(acknowledged, not-delivered, not-readable).")
    @click.option("--since", help="From this time on: a timestamp or a duration back (7d, 12h).")
    @click.option("--format", "output", type=FORMATS, default="table", show_default=True)
    @with_config
    def acknowledgements(settings: Settings, since: str | None, output: str):
        _print({"acknowledgements": reports.acknowledgement_rows(_service(settings), _since(since))}, output)


def _service(settings: Settings) -> ComplianceService:
    return ComplianceService(settings, open_store(settings.storage_url))


def _collections(settings: Settings, ref: str | None):
    if ref is None:
        return None
    collection = settings.collection(ref)
    if collection is None or not collection.track_deliveries:
        raise click.BadParameter(f"no collection {ref!r} records deliveries", param_hint="--collection")
    return (collection,)


def _since(text: str | None) -> int | None:
    try:
        return reports.since(text) if text else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None


def _pages(fetch: Callable[[tuple | None], tuple[list[dict], tuple | None]]) -> Iterator[dict]:
    after = None
    while True:
        rows, after = fetch(after)
        yield from rows
        if after is None:
            return


def _print(sections: dict[str, Iterable[dict]], output: str) -> None:
    """Each section in turn: rows are written as they come, so a long report streams."""
    out = sys.stdout
    if output == "json":
        out.write("{")
        for number, (name, rows) in enumerate(sections.items()):
            out.write(("," if number else "") + orjson.dumps(name).decode() + ":[")
            for index, row in enumerate(rows):
                out.write(("," if index else "") + orjson.dumps(row).decode())
            out.write("]")
        out.write("}\n")
        return
    for number, rows in enumerate(sections.values()):
        if number:
            out.write("\n")
        _write_rows(iter(rows), output, out)


def _write_rows(rows: Iterator[dict], output: str, out) -> None:
    if output == "csv":
        first = next(rows, None)
        if first is not None:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(list(first))
            writer.writerows([_cell(row[c], none="") for c in first] for row in itertools.chain([first], rows))
        return
    # A table's columns are as wide as the first WIDTH_SAMPLE rows need: a long report still streams.
    sample = list(itertools.islice(rows, WIDTH_SAMPLE))
    if not sample:
        out.write("(none)\n")
        return
    columns = list(sample[0])
    widths = {c: max(len(c), *(len(_cell(row[c])) for row in sample)) + 2 for c in columns}
    out.write("".join(c.upper().ljust(widths[c]) for c in columns).rstrip() + "\n")
    for row in itertools.chain(sample, rows):
        out.write("".join(_cell(row[c]).ljust(widths[c]) for c in columns).rstrip() + "\n")


def _cell(value, none: str = "-") -> str:
    if value is None:
        return none
    if isinstance(value, dict):
        return "; ".join(f"{key}={_cell(item)}" for key, item in value.items())
    return str(value)
