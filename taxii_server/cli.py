"""The `taxii-server` command line: a thin layer over config, keys and storage."""

from __future__ import annotations

import functools
import gc
import logging
import os
import re
import sys
from contextlib import closing, contextmanager
from urllib.parse import urlsplit

import click
from click.core import ParameterSource

from . import keys as api_keys
from .compliance import cli as compliance_cli
from .config import ConfigError, Settings, load_settings
from .errors import TaxiiError
from .file_modes import open_to_others, server_files
from .migrate import copy_store, versions_to_copy
from .ops.cli import register_operations_commands, serve_options
from .policy import access
from .storage import StorageError, open_store, redacted
from .storage.base import StoreConflict
from .timestamps import TimestampError, format_timestamp, now_micros, parse_timestamp
from .validation import Rejected, objects_from_body

IMPORT_BATCH = 500


def with_config(command):
    """Give a command `--config PATH` and pass it the loaded Settings."""
    @click.option("--config", "config_path", default="config.yaml", show_default=True,
                  type=click.Path(dir_okay=False), help="Configuration file.")
    @functools.wraps(command)
    def wrapper(config_path, **kwargs):
        # The command runs inside the try too: an unusable store (an unsupported URL, an
        # unreachable MongoDB) is only found when the command opens it, and deserves a
        # message, not a traceback.
        try:
            return command(load_settings(config_path), **kwargs)
        except (ConfigError, StorageError) as exc:
            raise click.ClickException(str(exc)) from None
    return wrapper


@click.group(help="taxii-server: a TAXII 2.1 threat-intelligence exchange server.")
def main():
    pass


_PEM_FILE = click.Path(exists=True, dir_okay=False)


def default_workers() -> int:
    """One worker per core this process may use: each serves reads on its own core
    (threads within a worker share one, Python's lock), and writes wait on the store's
    lock, not on workers. At least two, so one busy request never stalls the server;
    at most eight, past which a single SQLite file gains nothing."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(8, max(2, cores))


@main.command(help="Serve the TAXII API with gunicorn.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=default_workers(), show_default=True, type=click.IntRange(min=1),
              help="gunicorn worker processes (default: one per core, at least two, at most eight).")
@click.option("--threads", default=4, show_default=True, type=int, help="Threads per worker.")
@click.option("--tls-cert", type=_PEM_FILE, help="Serve HTTPS (TLS 1.2 or newer) with this certificate chain (PEM).")
@click.option("--tls-key", type=_PEM_FILE, help="The certificate's private key (PEM).")
@click.option("--tls-client-ca", type=_PEM_FILE,
              help="Ask clients for a certificate (mutual TLS) issued by these CAs or listed here (PEM). "
                   "Clients without one still authenticate with API keys.")
@serve_options
@with_config
def serve(settings: Settings, host: str, port: int, workers: int, threads: int,
          tls_cert: str | None, tls_key: str | None, tls_client_ca: str | None, operations):
    from .app import create_app
    from .server import run_gunicorn
    from .tls import TLSFiles

    if bool(tls_cert) != bool(tls_key):
        raise click.UsageError("give both --tls-cert and --tls-key, or neither")
    if tls_client_ca and not tls_cert:
        raise click.UsageError("--tls-client-ca needs --tls-cert and --tls-key")
    tls = TLSFiles(tls_cert, tls_key, tls_client_ca) if tls_cert else None
    if tls is not None:
        try:
            tls.check()
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    operations.prepare()  # before the app is built: the workers' metrics folder
    app = create_app(settings)
    logging.getLogger("taxii_server").info(
        f"discovery at {'https' if tls else 'http'}://{host}:{port}/taxii2/ "
        f"(api root /{settings.api_root_path}/, store {redacted(settings.storage_url)})")
    run_gunicorn(app, bind=f"{host}:{port}", workers=workers, threads=threads, tls=tls, log_format=operations.log_format,
                 hooks=operations.hooks(app))


@main.command(help="Validate config.yaml and collections/ and open the store.")
@with_config
def check(settings: Settings):
    store = open_store(settings.storage_url)
    store.close()
    for warning in open_to_others(server_files(settings.storage_url, settings.secret_file)):
        click.echo(f"warning: {warning}", err=True)
    licensees = sum(op.role == "licensee" for op in settings.operators.values())
    click.echo(f"ok: {len(settings.operators)} operators ({licensees} licensees), "
               f"{len(settings.collections)} collections, store {redacted(settings.storage_url)}")


@main.command(help="List operators with the collections each can read and write.")
@click.option("--json", "as_json", is_flag=True, help="Print each operator's id, name, role and STIX identity as JSON.")
@with_config
def operators(settings: Settings, as_json: bool):
    if as_json:
        from .sharing.cli import operators_json
        click.echo(operators_json(settings))
        return
    for operator in settings.operators.values():
        click.echo(f"{operator.id}  role={operator.role}  name={operator.name!r}")
        for collection in settings.collections:
            rights = access(operator, collection)
            if rights.visible:
                mode = ("read" if rights.can_read else "") + ("+write" if rights.can_write else "")
                click.echo(f"    {mode.lstrip('+'):<10} {collection.alias or collection.id}  ({collection.id})")


@main.group(help="Issue, list and revoke API keys.")
def keys():
    pass


@keys.command("issue", help="Issue a key for OPERATOR; the key is printed once, alone on the last line.")
@click.argument("operator_id")
@click.option("--expires", help="Expiry: a timestamp (2027-01-31T00:00:00Z) or a duration such as 90d or 12h.")
@click.option("--label", default="", help="A note to recognise the key by, e.g. 'sentinel prod'.")
@with_config
def keys_issue(settings: Settings, operator_id: str, expires: str | None, label: str):
    _require_operator(settings, operator_id)
    issued = api_keys.issue_key(open_store(settings.storage_url), settings.secret, operator_id,
                                expires=_expiry(expires), label=label)
    click.echo(f"key id {issued.record.key_id} for {operator_id}"
               + (f", expires {format_timestamp(issued.record.expires)}" if issued.record.expires else "")
               + ". Store it now: it cannot be shown again.", err=True)
    click.echo(issued.raw_key)


@keys.command("list", help="List keys: id, operator, created, expires, last used, state.")
@click.option("--operator", "operator_id", help="Only this operator's keys.")
@with_config
def keys_list(settings: Settings, operator_id: str | None):
    now = now_micros()
    click.echo(f"{'KEY ID':<14}{'OPERATOR':<16}{'CREATED':<29}{'EXPIRES':<29}{'LAST USED':<29}STATE  LABEL")
    for record in open_store(settings.storage_url).list_keys(operator_id):
        state = _state(record.revoked, record.expires, now)
        click.echo(f"{record.key_id:<14}{record.operator_id:<16}{_when(record.created):<29}"
                   f"{_when(record.expires):<29}{_when(record.last_used):<29}{state:<7}{record.label}")


@keys.command("revoke", help="Revoke a key; it is refused from the next request on.")
@click.argument("key_id")
@with_config
def keys_revoke(settings: Settings, key_id: str):
    if not open_store(settings.storage_url).revoke_key(key_id, now_micros()):
        raise click.ClickException(f"no key {key_id!r}")
    click.echo(f"revoked {key_id}")


@keys.command("rotate", help="Issue a new key for OPERATOR and let its current keys expire after a grace period.")
@click.argument("operator_id")
@click.option("--grace", default="7d", show_default=True, help="How long the old keys keep working (e.g. 7d, 12h, 0s).")
@click.option("--key", "key_id", help="Retire only this key id (default: every active key of the operator).")
@click.option("--label", default="", help="A note for the new key.")
@with_config
def keys_rotate(settings: Settings, operator_id: str, grace: str, key_id: str | None, label: str):
    _require_operator(settings, operator_id)
    store = open_store(settings.storage_url)
    if key_id is not None and (store.get_key(key_id) is None or store.get_key(key_id).operator_id != operator_id):
        raise click.ClickException(f"{operator_id} has no key {key_id!r}")
    rotation = api_keys.rotate_keys(store, settings.secret, operator_id, _duration(grace), key_id=key_id, label=label)
    for retired in rotation.retired_key_ids:
        click.echo(f"key id {retired} now expires {_when(rotation.retire_at)}", err=True)
    click.echo(f"key id {rotation.issued.record.key_id} for {operator_id}. Store it now: it cannot be shown again.",
               err=True)
    click.echo(rotation.issued.raw_key)


@keys.command("expire", help="Set or clear (--never) a key's expiry.")
@click.argument("key_id")
@click.option("--at", "when", help="A timestamp or a duration from now (90d, 12h, 0s for now).")
@click.option("--never", is_flag=True, help="Remove the expiry.")
@with_config
def keys_expire(settings: Settings, key_id: str, when: str | None, never: bool):
    if bool(when) == never:
        raise click.UsageError("give exactly one of --at and --never")
    expires = None if never else _expiry(when)
    if not open_store(settings.storage_url).set_key_expiry(key_id, expires):
        raise click.ClickException(f"no key {key_id!r}")
    click.echo(f"{key_id} expires {_when(expires)}")


@main.command(help="Show the audit trail, newest last: every request, with failed authentications "
                   "(refused and anonymous requests counted per minute, client and key id).")
@click.option("--operator", "operator_id", help="Only this operator's requests.")
@click.option("--since", help="From this time on: a timestamp or a duration back from now (24h, 7d).")
@click.option("--failures", is_flag=True, help="Only failed authentications.")
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(min=1), help="Show the newest LIMIT rows.")
@with_config
def audit(settings: Settings, operator_id: str | None, since: str | None, failures: bool, limit: int):
    from .audit_view import audit_line, audit_header

    start = None
    if since:
        start = now_micros() - _duration(since) if _DURATION.match(since) else _timestamp_option(since)
    events, left_out = open_store(settings.storage_url).query_audit_page(operator_id, start, failures, limit)
    if left_out:
        click.echo(f"{left_out} older rows left out; see them with --since or a larger --limit", err=True)
    click.echo(audit_header())
    for event in events:
        click.echo(audit_line(event))


@main.group(help="Register, list and revoke client certificates (mutual TLS).")
def certs():
    pass


@certs.command("register", help="Identify OPERATOR by the certificate in FILE (PEM); stores its SHA-256 fingerprint.")
@click.argument("operator_id")
@click.argument("file", type=click.File("rb"))
@click.option("--label", default="", help="A note to recognise the certificate by, e.g. 'qradar prod'.")
@with_config
def certs_register(settings: Settings, operator_id: str, file, label: str):
    from . import mtls

    _require_operator(settings, operator_id)
    try:
        record = mtls.register(open_store(settings.storage_url), operator_id, file.read(), now_micros(), label)
    except mtls.CertificateError as exc:
        raise click.ClickException(f"{file.name}: {exc}") from None
    click.echo(f"registered for {operator_id}: {record.subject}, expires {_when(record.expires)}", err=True)
    click.echo(record.fingerprint)


@certs.command("list", help="List client certificates: fingerprint, operator, expiry, state, subject.")
@click.option("--operator", "operator_id", help="Only this operator's certificates.")
@with_config
def certs_list(settings: Settings, operator_id: str | None):
    now = now_micros()
    click.echo(f"{'FINGERPRINT (SHA-256)':<66}{'OPERATOR':<16}{'EXPIRES':<29}STATE    SUBJECT  LABEL")
    for record in open_store(settings.storage_url).list_client_certs(operator_id):
        state = _state(record.revoked, record.expires, now)
        click.echo(f"{record.fingerprint:<66}{record.operator_id:<16}{_when(record.expires):<29}{state:<9}"
                   f"{record.subject}  {record.label}")


@certs.command("revoke", help="Revoke a certificate by its fingerprint (or a unique prefix of 12 or more hex digits).")
@click.argument("fingerprint")
@with_config
def certs_revoke(settings: Settings, fingerprint: str):
    from .mtls import normalise_fingerprint

    store = open_store(settings.storage_url)
    wanted = normalise_fingerprint(fingerprint)
    if len(wanted) < 12:
        raise click.ClickException("give the fingerprint, or at least its first 12 hex digits")
    matches = [r.fingerprint for r in store.list_client_certs() if r.fingerprint.startswith(wanted)]
    if len(matches) != 1:
        raise click.ClickException(f"{fingerprint!r} matches {len(matches)} registered certificates, not one")
    store.revoke_client_cert(matches[0], now_micros())
    click.echo(f"revoked {matches[0]}")


@main.group(help="HTTPS helpers.")
def tls():
    pass


@tls.command("dev-cert", help="Write a self-signed development certificate (cert.pem) and its key (key.pem, "
                              "mode 0600) for serve --tls-cert/--tls-key. Not for production.")
@click.option("--out-dir", default="data/tls", show_default=True, type=click.Path(file_okay=False))
@click.option("--host", "hosts", multiple=True, help="A DNS name or IP address the certificate is for; repeat. "
                                                     "Default: localhost, 127.0.0.1, ::1.")
@click.option("--days", default=365, show_default=True, type=click.IntRange(min=1))
@click.option("--force", is_flag=True, help="Overwrite an existing cert.pem and key.pem.")
def tls_dev_cert(out_dir: str, hosts: tuple[str, ...], days: int, force: bool):
    from .tls import DEFAULT_DEV_HOSTS, write_dev_certificate

    try:
        written = write_dev_certificate(out_dir, hosts or DEFAULT_DEV_HOSTS, days=days, overwrite=force)
    except FileExistsError as exc:
        raise click.ClickException(f"{exc}; --force overwrites it") from None
    click.echo(f"certificate {written.cert_path}\nprivate key {written.key_path}\nSHA-256 {written.fingerprint}\n"
               f"serve with: taxii-server serve --tls-cert {written.cert_path} --tls-key {written.key_path}\n"
               f"clients trust it with: curl --cacert {written.cert_path}, requests verify={str(written.cert_path)!r}")


@contextmanager
def spared_from_collection():
    """Keep the garbage collector from walking what is alive now (a parsed bundle: no reference
    cycles, alive until the import ends) at every full collection, a cost that grows with the
    bundle; it is collected as usual again afterwards."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@main.command("import", help="Load a STIX bundle (or TAXII envelope) file into a collection.")
@click.argument("file", type=click.File("rb"))
@click.option("--collection", "collection_ref", required=True, help="Collection id or alias.")
@click.option("--as", "operator_id", help="Store the objects as this operator's (default: the regulator's): "
                                          "the sharing rules and object ownership apply as to its own posts.")
@with_config
def import_bundle(settings: Settings, file, collection_ref: str, operator_id: str | None):
    from .auth import Principal
    from .sharing.cli import CLI_KEY_ID
    from .sharing.screening import screen, store_screened

    collection = settings.collection(collection_ref)
    if collection is None:
        raise click.ClickException(f"no collection {collection_ref!r}")
    operator_id = operator_id or next(op.id for op in settings.operators.values() if op.role == "regulator")
    _require_operator(settings, operator_id)
    principal = Principal(settings.operators[operator_id], CLI_KEY_ID)
    try:
        items = objects_from_body(file.read())
    except TaxiiError as exc:
        raise click.ClickException(exc.description or exc.title) from None
    store = open_store(settings.storage_url)
    stored = duplicates = 0
    problems: list[str] = []
    with spared_from_collection(), click.progressbar(
            length=len(items), label=f"importing into {collection.alias or collection.id}", file=sys.stderr) as bar:
        for start in range(0, len(items), IMPORT_BATCH):
            screening = screen(settings, principal, collection, items[start:start + IMPORT_BATCH])
            problems += [f"{r.object_id}: {r.message}" for r in screening.checked if isinstance(r, Rejected)]
            for outcome in store_screened(store, collection, screening):
                if outcome.conflict:
                    problems.append(f"{outcome.object_id}: {outcome.conflict}")
                elif outcome.stored:
                    stored += 1
                else:
                    duplicates += 1
            bar.update(len(screening.checked))
    for problem in problems:
        click.echo(f"rejected {problem}", err=True)
    click.echo(f"{stored} stored, {duplicates} already present, {len(problems)} rejected")
    if problems:
        sys.exit(1)


@main.command(help="Copy a whole store into another, e.g. SQLite into MongoDB: objects with their date_added, "
                   "statuses, API keys and client certificates (not the audit trail). Running it again copies "
                   "only what is new and brings keys and certificates up to date.")
@click.option("--from", "source_url", required=True, envvar="TAXII_MIGRATE_FROM",
              help="The store to copy: sqlite:///PATH or mongodb://HOSTS/DATABASE. "
                   "A URL with a password goes in TAXII_MIGRATE_FROM instead.")
@click.option("--to", "destination_url", required=True, envvar="TAXII_MIGRATE_TO",
              help="The store to copy into: empty, or written by migrate only. "
                   "A URL with a password goes in TAXII_MIGRATE_TO instead.")
def migrate(source_url: str, destination_url: str):
    _refuse_passwords_in_arguments(source_url="TAXII_MIGRATE_FROM", destination_url="TAXII_MIGRATE_TO")
    if source_url == destination_url:
        raise click.UsageError(f"--from and --to are the same store, {redacted(source_url)}")
    try:
        with (closing(open_store(source_url)) as source,
              closing(open_store(destination_url)) as destination,
              click.progressbar(length=versions_to_copy(source), label="copying object versions",
                                file=sys.stderr) as bar):
            report = copy_store(source, destination, progress=bar.update)
    except StorageError as exc:
        raise click.ClickException(str(exc)) from None
    except StoreConflict as exc:
        raise click.ClickException(f"{redacted(destination_url)} already holds other data than "
                                   f"{redacted(source_url)}: {exc}") from None
    click.echo(f"versions: {report.versions_copied} copied, {report.versions_present} already present; "
               f"statuses: {report.statuses_copied} copied, {report.statuses_present} already present; "
               f"API keys written: {report.keys}; client certificates written: {report.client_certs}")


def _refuse_passwords_in_arguments(**variables: str) -> None:
    """Any user can read a command's arguments in the process list, but not its environment."""
    context = click.get_current_context()
    for parameter, variable in variables.items():
        url = context.params[parameter]
        if context.get_parameter_source(parameter) is ParameterSource.COMMANDLINE and urlsplit(url).password:
            raise click.UsageError(f"{redacted(url)} carries a password, which other users can read in the process "
                                   f"list: give the URL in the environment variable {variable} instead")


compliance_cli.register(main, with_config)

register_operations_commands(main)

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(text: str) -> int:
    """`90d`, `12h`, `30m`, `45s` -> microseconds."""
    match = _DURATION.match(text)
    if not match:
        raise click.BadParameter(f"{text!r} is not a duration like 7d, 12h, 30m or 0s")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)] * 1_000_000


def _expiry(text: str | None) -> int | None:
    if not text:
        return None
    if _DURATION.match(text):
        return now_micros() + _duration(text)
    return _timestamp_option(text)


def _timestamp_option(text: str) -> int:
    try:
        return parse_timestamp(text)
    except TimestampError:
        raise click.BadParameter(f"{text!r} is neither a timestamp nor a duration like 90d") from None


def _require_operator(settings: Settings, operator_id: str) -> None:
    if operator_id not in settings.operators:
        raise click.ClickException(f"no operator {operator_id!r} in the configuration")


def _state(revoked: int | None, expires: int | None, now: int) -> str:
    """A key's or certificate's state, as lists show it."""
    return "revoked" if revoked else "expired" if expires and expires <= now else "active"


def _when(micros: int | None) -> str:
    return format_timestamp(micros) if micros else "-"


# Commands defined in their own packages; imported last, as they use with_config above.
from .sharing.cli import provenance, publish  # noqa: E402
from .feeds.cli import feeds  # noqa: E402

main.add_command(provenance)
main.add_command(publish)
main.add_command(feeds)

if __name__ == "__main__":  # pragma: no cover
    main(prog_name=os.path.basename(sys.argv[0]))
