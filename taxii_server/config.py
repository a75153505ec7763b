"""Loading and validating configuration: config.yaml, collections/ and the server secret.

Everything the server is told about itself passes through `load_settings`,
which checks it against the JSON Schemas in `schemas/` and fails with a
message naming the file and the property at fault.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import secrets
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import orjson
import yaml

from .file_modes import private_folder
from .feeds.safety import SafetyRules
from .storage import sqlite_path

DEFAULT_MAX_CONTENT_LENGTH = 10 * 1024 * 1024
DEFAULT_MAX_PAGE_BYTES = 10 * 1024 * 1024
DEFAULT_FAILED_AUTHENTICATIONS_PER_MINUTE = 60


class ConfigError(ValueError):
    """The configuration cannot be used; the message says where and why."""


@dataclass(frozen=True)
class Operator:
    id: str
    role: str  # "regulator" or "licensee"
    name: str
    # Sharing rules (taxii_server/sharing): a declared STIX identity id (else one is derived
    # from the id), and the other names, e-mail addresses and phone numbers that identify it.
    identity: str | None = None
    aliases: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()


@dataclass(frozen=True)
class Collection:
    id: str
    title: str
    alias: str | None = None
    description: str | None = None
    readers: tuple[str, ...] = ()
    writers: tuple[str, ...] = ()
    deleters: tuple[str, ...] = ()
    # Sharing rules (taxii_server/sharing/tlp.py, anonymity.py): the highest TLP held, the
    # TLP an unmarked object counts as (or "refuse"), and whether submitters are hidden.
    tlp_ceiling: str = "red"
    unmarked_tlp: str = "amber"
    anonymous: bool = False
    # Compliance records: note the first time each operator is sent each version (taxii_server/compliance).
    track_deliveries: bool = False


@dataclass(frozen=True)
class ScrubRule:
    """Personal data removed from republished free text: what matches `pattern` becomes `replacement`."""

    name: str
    pattern: str
    replacement: str


@dataclass(frozen=True)
class SharingSettings:
    # A version whose `modified` (else `created`) is further ahead of the server's clock is refused.
    max_future_skew: int = 300 * 1_000_000
    scrub_rules: tuple[ScrubRule, ...] = ()


@dataclass(frozen=True)
class MutualTLS:
    """Client certificates forwarded by a reverse proxy that verified them: the
    header is believed only on connections from `trusted_proxies`."""

    proxy_header: str
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

    def trusts(self, address: str | None) -> bool:
        try:
            peer = ipaddress.ip_address(address or "")
        except ValueError:
            return False
        # A dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d.
        peer = getattr(peer, "ipv4_mapped", None) or peer
        return any(peer in network for network in self.trusted_proxies)


@dataclass(frozen=True)
class WorkLimits:
    """Bounds on the work, memory and storage one request can cause (README, Security)."""

    max_objects_per_envelope: int = 10_000
    max_pattern_length: int = 16_384       # characters
    max_pattern_operators: int = 150       # AND, OR, FOLLOWEDBY
    max_pattern_nesting: int = 20          # parentheses inside one another
    validation_seconds: float = 10.0       # CPU seconds of validation per POST
    max_page_bytes: int = DEFAULT_MAX_PAGE_BYTES
    status_retention_seconds: int = 7 * 86_400


@dataclass(frozen=True)
class Settings:
    title: str
    storage_url: str
    secret: bytes
    api_root_path: str
    api_root_title: str
    operators: dict[str, Operator]
    collections: tuple[Collection, ...]
    description: str | None = None
    contact: str | None = None
    api_root_description: str | None = None
    max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH
    default_limit: int = 100
    max_limit: int = 1000
    mtls: MutualTLS | None = None
    # Requests one API key may make per minute; None means no limit.
    requests_per_minute: int | None = None
    work: WorkLimits = field(default_factory=WorkLimits)
    # Requests a key may make at once before that rate applies (a client's first sync); None: the rate.
    rate_burst: int | None = None
    # Failed authentications one client address may make per minute (and at once); None: no limit.
    failed_authentications_per_minute: int | None = DEFAULT_FAILED_AUTHENTICATIONS_PER_MINUTE
    sharing: SharingSettings = field(default_factory=SharingSettings)
    # How long compliance records (deliveries, acknowledgements, sightings) are kept.
    compliance_retention_days: int = 730
    # What firewall feeds never publish (taxii_server/feeds/safety.py).
    feed_rules: SafetyRules = field(default_factory=SafetyRules.build)
    # Bearer token that Prometheus presents to read /metrics; None serves no metrics there.
    metrics_token: bytes | None = None
    # The portal (taxii_server/portal): a session ends after this long without a request.
    portal_idle_seconds: int = 30 * 60
    # Sign-in attempts one client address may make per minute.
    portal_sign_ins_per_minute: int = 10
    # Mark the portal's cookies Secure on every request, for HTTPS ended at a proxy in front.
    portal_secure_cookies: bool = False
    source: Path | None = field(default=None, compare=False)
    secret_file: Path | None = field(default=None, compare=False)  # None when the secret is in the environment

    def collection(self, id_or_alias: str) -> Collection | None:
        for collection in self.collections:
            if id_or_alias in (collection.id, collection.alias):
                return collection
        return None


def schemas_dir() -> Path:
    """schemas/ beside the package in a checkout, or inside it when installed from a wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "schemas", here.parent / "schemas"):
        if candidate.is_dir():
            return candidate
    raise ConfigError("cannot find the schemas/ folder")


def load_settings(config_path: str | os.PathLike, environ: dict | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    path = Path(config_path)
    raw = _read_yaml(path)
    _validate(raw, "config.schema.json", path)
    base = path.resolve().parent
    operators = _operators(raw["operators"], path)
    collections_dir = base / raw.get("collections_dir", "collections")
    collections = load_collections(collections_dir, operators)
    paging = raw.get("paging", {})
    default_limit, max_limit = paging.get("default_limit", 100), paging.get("max_limit", 1000)
    if default_limit > max_limit:
        raise ConfigError(f"{path}: paging.default_limit ({default_limit}) exceeds paging.max_limit ({max_limit})")
    api_root = raw["api_root"]
    secret_file = base / raw.get("secret_file", "server.secret")
    return Settings(
        title=raw["title"],
        description=raw.get("description"),
        contact=raw.get("contact"),
        storage_url=_storage_url(environ.get("TAXII_STORAGE_URL") or raw["storage"], base),
        secret=_server_secret(environ.get("TAXII_SERVER_SECRET"), secret_file),
        api_root_path=api_root["path"],
        api_root_title=api_root["title"],
        api_root_description=api_root.get("description"),
        max_content_length=api_root.get("max_content_length", DEFAULT_MAX_CONTENT_LENGTH),
        operators=operators,
        collections=collections,
        default_limit=default_limit,
        max_limit=max_limit,
        mtls=_mutual_tls(raw.get("mtls"), path),
        requests_per_minute=raw.get("rate_limit", {}).get("requests_per_minute"),
        work=_work_limits(raw),
        rate_burst=raw.get("rate_limit", {}).get("burst"),
        failed_authentications_per_minute=raw.get("rate_limit", {}).get(
            "failed_authentications_per_minute", DEFAULT_FAILED_AUTHENTICATIONS_PER_MINUTE),
        sharing=_sharing(raw.get("sharing", {}), base),
        compliance_retention_days=raw.get("compliance", {}).get("retention_days", 730),
        feed_rules=_feed_rules(raw.get("feeds", {}), path),
        metrics_token=_metrics_token(environ.get("TAXII_METRICS_TOKEN"), raw.get("metrics", {}), base),
        portal_idle_seconds=raw.get("portal", {}).get("idle_minutes", 30) * 60,
        portal_sign_ins_per_minute=raw.get("portal", {}).get("sign_ins_per_minute", 10),
        portal_secure_cookies=raw.get("portal", {}).get("secure_cookies", False),
        source=path,
        secret_file=None if environ.get("TAXII_SERVER_SECRET") else secret_file,
    )


def _work_limits(raw: dict) -> WorkLimits:
    api_root, validation = raw["api_root"], raw.get("validation", {})
    defaults = WorkLimits()
    return WorkLimits(
        max_objects_per_envelope=api_root.get("max_objects_per_envelope", defaults.max_objects_per_envelope),
        max_pattern_length=validation.get("max_pattern_length", defaults.max_pattern_length),
        max_pattern_operators=validation.get("max_pattern_operators", defaults.max_pattern_operators),
        max_pattern_nesting=validation.get("max_pattern_nesting", defaults.max_pattern_nesting),
        validation_seconds=validation.get("seconds_per_request", defaults.validation_seconds),
        max_page_bytes=raw.get("paging", {}).get("max_page_bytes", defaults.max_page_bytes),
        status_retention_seconds=int(raw.get("statuses", {}).get("retention_hours", 168) * 3600),
    )


def load_collections(folder: Path, operators: dict[str, Operator]) -> tuple[Collection, ...]:
    if not folder.is_dir():
        raise ConfigError(f"collections folder {folder} does not exist")
    collections: list[Collection] = []
    for file in sorted(folder.glob("*.yaml")):
        declaration = _read_yaml(file)
        _validate(declaration, "collection.schema.json", file)
        if declaration.get("template") == "per-licensee":
            licensees = [op for op in operators.values() if op.role == "licensee"]
            collections.extend(_from_template(declaration, file.stem, op) for op in licensees)
        else:
            collections.append(_collection(declaration))
    _check_unique(collections, folder)
    _check_audiences(collections, operators, folder)
    return tuple(collections)


def _from_template(declaration: dict, template_name: str, operator: Operator) -> Collection:
    def fill(text):
        if not isinstance(text, str):  # e.g. track_deliveries: true
            return text
        return text.replace("{operator_id}", operator.id).replace("{operator_name}", operator.name)

    filled = {key: ([fill(v) for v in value] if isinstance(value, list)
                    else fill(value) if isinstance(value, str) else value)
              for key, value in declaration.items() if key != "template"}
    filled["id"] = derived_collection_id(template_name, operator.id)
    return _collection(filled)


def derived_collection_id(template_name: str, operator_id: str) -> str:
    """A stable identifier for a templated collection: the same config always
    yields the same id, shaped as a version-4 UUID as TAXII §2 requires."""
    digest = hashlib.sha256(f"taxii-server/{template_name}/{operator_id}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def _collection(declaration: dict) -> Collection:
    return Collection(
        id=declaration["id"],
        title=declaration["title"],
        alias=declaration.get("alias"),
        description=declaration.get("description"),
        readers=tuple(declaration["read"]),
        writers=tuple(declaration["write"]),
        deleters=tuple(declaration.get("delete", declaration["write"])),
        tlp_ceiling=declaration.get("tlp_ceiling", "red"),
        unmarked_tlp=declaration.get("unmarked_tlp", "amber"),
        anonymous=declaration.get("anonymous", False),
        track_deliveries=declaration.get("track_deliveries", False),
    )


def _operators(entries: list[dict], path: Path) -> dict[str, Operator]:
    operators: dict[str, Operator] = {}
    for entry in entries:
        if entry["id"] in operators:
            raise ConfigError(f"{path}: operator {entry['id']!r} is declared twice")
        operators[entry["id"]] = Operator(id=entry["id"], role=entry["role"], name=entry.get("name", entry["id"]),
                                          identity=entry.get("identity"), aliases=tuple(entry.get("aliases", ())),
                                          emails=tuple(entry.get("emails", ())), phones=tuple(entry.get("phones", ())))
    if not any(op.role == "regulator" for op in operators.values()):
        raise ConfigError(f"{path}: no operator has role 'regulator'")
    return operators


DEFAULT_SCRUBBING = Path(__file__).resolve().parent / "sharing" / "scrubbing.yaml"


def _sharing(section: dict, base: Path) -> SharingSettings:
    """The sharing rules' settings. Scrubbing applies the deployment's own rules first (the most
    specific), then the built-in ones it neither disables nor replaces by name."""
    built_in = _scrub_rules(DEFAULT_SCRUBBING)
    own = _scrub_rules(base / section["scrubbing_rules"]) if "scrubbing_rules" in section else {"rules": []}
    replaced = set(own.get("disable", ())) | {rule.name for rule in own["rules"]}
    return SharingSettings(max_future_skew=section.get("max_future_skew_seconds", 300) * 1_000_000,
                           scrub_rules=tuple(own["rules"] + [r for r in built_in["rules"] if r.name not in replaced]))


def _scrub_rules(file: Path) -> dict:
    declared = _read_yaml(file)
    _validate(declared, "scrubbing.schema.json", file)
    rules = []
    for entry in declared.get("rules", ()):
        try:
            re.compile(entry["pattern"])
        except re.error as exc:
            raise ConfigError(f"{file}: rule {entry['name']!r}: not a regular expression: {exc}") from None
        rules.append(ScrubRule(entry["name"], entry["pattern"], entry.get("replacement", "[redacted]")))
    return {"disable": declared.get("disable", ()), "rules": rules}


def _mutual_tls(section: dict | None, path: Path) -> MutualTLS | None:
    if section is None:
        return None
    networks = []
    for entry in section["trusted_proxies"]:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ConfigError(f"{path}: mtls/trusted_proxies: {entry!r} is not an IP address or network") from None
    return MutualTLS(proxy_header=section["proxy_header"], trusted_proxies=tuple(networks))


def _feed_rules(section: dict, path: Path) -> SafetyRules:
    allowlist = section.get("allowlist", {})
    try:
        return SafetyRules.build(allowlist.get("networks", ()), allowlist.get("domains", ()),
                                 section.get("min_ipv4_prefix", 8), section.get("min_ipv6_prefix", 32))
    except ValueError as exc:
        raise ConfigError(f"{path}: feeds/allowlist: {exc}") from None


def _check_unique(collections: list[Collection], folder: Path) -> None:
    seen: dict[str, str] = {}
    for collection in collections:
        for name in filter(None, (collection.id, collection.alias)):
            if name in seen:
                raise ConfigError(f"{folder}: {name!r} names two collections ({seen[name]} and {collection.title})")
            seen[name] = collection.title


def _check_audiences(collections: list[Collection], operators: dict[str, Operator], folder: Path) -> None:
    for collection in collections:
        for entry in (*collection.readers, *collection.writers, *collection.deleters):
            if entry.startswith("operator:") and entry[len("operator:"):] not in operators:
                raise ConfigError(f"{folder}: collection {collection.title!r} names unknown {entry!r}")


def _storage_url(url: str, base: Path) -> str:
    """Resolve a relative SQLite path against the config file's folder."""
    if url.startswith("sqlite:"):
        path = sqlite_path(url)
        if path != ":memory:" and not os.path.isabs(path):
            return "sqlite:///" + str(base / path)
    return url


def _server_secret(from_environment: str | None, secret_file: Path) -> bytes:
    if from_environment:
        if len(from_environment) < 32:
            raise ConfigError("TAXII_SERVER_SECRET must be at least 32 characters")
        return from_environment.encode()
    if not secret_file.exists():
        _create_secret_file(secret_file)
    secret = secret_file.read_text().strip()
    if len(secret) < 32:
        raise ConfigError(f"{secret_file}: the server secret must be at least 32 characters")
    return secret.encode()


def _metrics_token(from_environment: str | None, section: dict, base: Path) -> bytes | None:
    """The scrape credential: apart from every operator's key, so that reading metrics grants nothing else."""
    if from_environment:
        token, origin = from_environment.strip(), "TAXII_METRICS_TOKEN"
    elif "scrape_token_file" in section:
        token_file = base / section["scrape_token_file"]
        try:
            token, origin = token_file.read_text().strip(), str(token_file)
        except OSError as exc:
            raise ConfigError(f"{token_file}: cannot read the metrics scrape token: {exc.strerror}") from None
    else:
        return None
    if len(token) < 32:
        raise ConfigError(f"{origin}: the metrics scrape token must be at least 32 characters")
    return token.encode()


def _create_secret_file(secret_file: Path) -> None:
    """Write a new secret atomically: gunicorn workers starting together must all
    end up with the same one, and none may read a half-written file."""
    private_folder(secret_file.parent)
    draft = secret_file.with_name(f".{secret_file.name}.{os.getpid()}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # exactly, whatever the umask
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secrets.token_hex(32) + "\n")
    try:
        os.link(draft, secret_file)  # fails if another process got there first; theirs wins
    except FileExistsError:
        pass
    finally:
        os.unlink(draft)


def _read_yaml(path: Path) -> dict:
    try:
        with open(path, "rb") as handle:
            data = yaml.safe_load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def _validate(document: dict, schema_name: str, path: Path) -> None:
    schema = orjson.loads((schemas_dir() / schema_name).read_bytes())
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(document), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.path) or "(top level)"
        raise ConfigError(f"{path}: {where}: {first.message}")
