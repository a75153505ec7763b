"""Loading and validating configuration: config.yaml, collections/ and the server secret.

Everything the server is told about itself passes through `load_settings`,
which checks it against the JSON Schemas in `schemas/` and fails with a
message naming the file and the property at fault.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import secrets
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import orjson
import yaml

from .storage import sqlite_path

DEFAULT_MAX_CONTENT_LENGTH = 10 * 1024 * 1024


class ConfigError(ValueError):
    """The configuration cannot be used; the message says where and why."""


@dataclass(frozen=True)
class Operator:
    id: str
    role: str  # "regulator" or "licensee"
    name: str


@dataclass(frozen=True)
class Collection:
    id: str
    title: str
    alias: str | None = None
    description: str | None = None
    readers: tuple[str, ...] = ()
    writers: tuple[str, ...] = ()
    deleters: tuple[str, ...] = ()


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
    # The portal (taxii_server/portal): a session ends after this long without a request.
    portal_idle_seconds: int = 30 * 60
    # Sign-in attempts one client address may make per minute.
    portal_sign_ins_per_minute: int = 10
    # Mark the portal's cookies Secure on every request, for HTTPS ended at a proxy in front.
    portal_secure_cookies: bool = False
    source: Path | None = field(default=None, compare=False)

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
    return Settings(
        title=raw["title"],
        description=raw.get("description"),
        contact=raw.get("contact"),
        storage_url=_storage_url(environ.get("TAXII_STORAGE_URL") or raw["storage"], base),
        secret=_server_secret(environ.get("TAXII_SERVER_SECRET"), base / raw.get("secret_file", "server.secret")),
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
        portal_idle_seconds=raw.get("portal", {}).get("idle_minutes", 30) * 60,
        portal_sign_ins_per_minute=raw.get("portal", {}).get("sign_ins_per_minute", 10),
        portal_secure_cookies=raw.get("portal", {}).get("secure_cookies", False),
        source=path,
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
        return text.replace("{operator_id}", operator.id).replace("{operator_name}", operator.name)

    filled = {key: ([fill(v) for v in value] if isinstance(value, list) else fill(value))
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
    )


def _operators(entries: list[dict], path: Path) -> dict[str, Operator]:
    operators: dict[str, Operator] = {}
    for entry in entries:
        if entry["id"] in operators:
            raise ConfigError(f"{path}: operator {entry['id']!r} is declared twice")
        operators[entry["id"]] = Operator(id=entry["id"], role=entry["role"], name=entry.get("name", entry["id"]))
    if not any(op.role == "regulator" for op in operators.values()):
        raise ConfigError(f"{path}: no operator has role 'regulator'")
    return operators


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


def _create_secret_file(secret_file: Path) -> None:
    """Write a new secret atomically: gunicorn workers starting together must all
    end up with the same one, and none may read a half-written file."""
    secret_file.parent.mkdir(parents=True, exist_ok=True)
    draft = secret_file.with_name(f".{secret_file.name}.{os.getpid()}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
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
