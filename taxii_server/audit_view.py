"""How `taxii-server audit` prints the trail: one line per record, whatever a
record holds. Every field is escaped, so a stored value cannot start a line of
its own (\\n, \\r) or drive the terminal (\\x1b)."""

from __future__ import annotations

from .storage.base import AuditEvent
from .timestamps import format_timestamp


def printable(text: str) -> str:
    """`text` with a backslash escape for every character outside printable ASCII, and for backslash itself."""
    return "".join(c if " " <= c <= "~" and c != "\\" else _escape(c) for c in text)


def _escape(character: str) -> str:
    if character == "\\":
        return "\\\\"
    code = ord(character)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def audit_header() -> str:
    return f"{'TIME':<29}{'OPERATOR':<14}{'KEY ID':<22}{'CLIENT':<17}{'STATUS':<7}{'OBJECTS':<8}{'COUNT':<7}REQUEST"


def audit_line(event: AuditEvent) -> str:
    fields = [format_timestamp(event.at), event.operator_id or "-", event.key_id or "-", event.client]
    operator, key_id, client = (printable(value) for value in fields[1:])
    return (f"{fields[0]:<29}{operator:<14}{key_id:<22}{client:<17}{event.status:<7}{event.objects:<8}"
            f"{event.count:<7}{printable(event.method)} {printable(event.path)}")
