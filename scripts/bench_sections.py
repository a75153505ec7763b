"""The sections benchmark scripts write into docs/benchmarks.md.

Each script owns one section between `<!-- NAME: begin -->` and `<!-- NAME: end -->`;
`put_section` replaces it in place, or adds it at the end, and scripts/bench keeps
every such section when it rewrites the file.
"""

from __future__ import annotations

from pathlib import Path


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}: begin -->", f"<!-- {name}: end -->"


def put_section(report: Path, name: str, body: str) -> None:
    """Write `body` as the section `name` of `report`, between its markers."""
    begin, end = markers(name)
    text = report.read_text() if report.exists() else "# Benchmarks\n"
    block = f"{begin}\n{body.strip(chr(10))}\n{end}"
    if begin in text and end in text:
        text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    report.write_text(text)
