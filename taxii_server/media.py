"""Content negotiation for the TAXII media types (§1.6.8, §3.1)."""

from __future__ import annotations

TAXII_MEDIA_TYPE = "application/taxii+json;version=2.1"
STIX_MEDIA_TYPE = "application/stix+json;version=2.1"
SUPPORTED_VERSION = "2.1"


def parse_media_range(text: str) -> tuple[str, dict[str, str]]:
    """`application/taxii+json; version=2.1` -> ("application/taxii+json", {"version": "2.1"})."""
    kind, *params = text.split(";")
    parameters = {}
    for param in params:
        name, _, value = param.partition("=")
        parameters[name.strip().lower()] = value.strip().strip('"')
    return kind.strip().lower(), parameters


def accept_allows_taxii(accept_header: str | None) -> bool:
    """True when the Accept header admits `application/taxii+json;version=2.1`.

    A missing header accepts anything (RFC 9110); `*/*` and `application/*`
    are served as a courtesy to curl and browsers (§3.1 lets the server choose).
    """
    if not accept_header or not accept_header.strip():
        return True
    for media_range in accept_header.split(","):
        kind, params = parse_media_range(media_range)
        if params.get("q", "1").strip() in {"0", "0.0", "0.00", "0.000"}:
            continue
        if kind in {"*/*", "application/*"}:
            return True
        if kind == "application/taxii+json" and params.get("version", SUPPORTED_VERSION) == SUPPORTED_VERSION:
            return True
    return False


def content_type_is_taxii(content_type: str | None) -> bool:
    """True for a body we can read: a TAXII 2.1 envelope (or a STIX 2.1 bundle)."""
    if not content_type:
        return False
    kind, params = parse_media_range(content_type)
    if kind == "application/taxii+json":
        return params.get("version", SUPPORTED_VERSION) == SUPPORTED_VERSION
    if kind == "application/stix+json":
        return params.get("version", SUPPORTED_VERSION) == SUPPORTED_VERSION
    return False
