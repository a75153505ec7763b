"""A listing as a file: a STIX 2.1 bundle, or CSV for spreadsheets."""

from __future__ import annotations

import csv
import io
import uuid

import orjson

from ..timestamps import format_timestamp
from .listing import Listed
from .stix_view import tlp_of, title_of

CSV_COLUMNS = ("id", "type", "title", "pattern", "tlp", "created", "modified", "valid_from", "valid_until",
               "date_added")


def as_bundle(items: list[Listed]) -> bytes:
    # Stored bodies are spliced in as stored, not parsed and written again.
    head = b'{"type":"bundle","id":' + orjson.dumps(f"bundle--{uuid.uuid4()}")
    if not items:  # STIX lists are never empty: a bundle with nothing has no objects property
        return head + b"}"
    return head + b',"objects":[' + b",".join(item.record.body for item in items) + b"]}"


def as_csv(items: list[Listed]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for item in items:
        obj = item.obj
        writer.writerow([_cell(value) for value in (
            obj.get("id"), obj.get("type"), title_of(obj), obj.get("pattern", ""), tlp_of(obj), obj.get("created"),
            obj.get("modified"), obj.get("valid_from"), obj.get("valid_until"),
            format_timestamp(item.record.date_added))])
    return out.getvalue()


def _cell(value) -> str:
    text = "" if value is None else str(value)
    # A cell starting with = + - @ is run as a formula by spreadsheets: keep it text.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
