"""Commands and serve options for running the server as a service: backup, restore,
--log-format and --metrics-bind."""

from __future__ import annotations

import functools
from pathlib import Path

import click

from ..config import Settings
from ..storage import sqlite_path

MONGODB_BACKUPS = ("this store is MongoDB: back it up with mongodump --oplog and restore with "
                   "mongorestore --oplogReplay (docs/operations.md, Backups)")


def serve_options(command):
    """Give `serve` --log-format and --metrics-bind, as one `operations` argument (serving.ServeOperations)."""
    @click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
                  help="Log lines as text, or as one JSON object a line for a log pipeline.")
    @click.option("--metrics-bind", metavar="HOST:PORT",
                  help="Also serve Prometheus metrics on this address, without credentials: "
                       "bind it where only Prometheus reaches (e.g. 127.0.0.1:9100).")
    @functools.wraps(command)
    def wrapper(*args, log_format: str, metrics_bind: str | None, **kwargs):
        from .serving import ServeOperations, parse_bind

        try:
            bind = parse_bind(metrics_bind) if metrics_bind else None
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--metrics-bind") from None
        return command(*args, operations=ServeOperations(log_format, bind), **kwargs)
    return wrapper


def register_operations_commands(main: click.Group) -> None:
    from ..cli import with_config

    @main.command(help="Back up the SQLite store while it serves: one consistent snapshot into the new file PATH "
                       "(mode 0600). Writers keep writing meanwhile. The server secret is not in it: keep a copy "
                       "of the secret file apart.")
    @click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
    @with_config
    def backup(settings: Settings, path: Path):
        from .backup import BackupError, backup_sqlite

        store = _sqlite_store(settings)
        try:
            report = backup_sqlite(store, path)
        except BackupError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"backed up {store} to {report.path}: {report.size} bytes in {report.seconds:.1f} s")

    @main.command(help="Replace the whole SQLite store with the backup in PATH. Stop the server first; "
                       "the server secret must be the one in use when the backup was made.")
    @click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
    @click.option("--force", is_flag=True, help="Replace a store that already holds data.")
    @with_config
    def restore(settings: Settings, path: Path, force: bool):
        from .backup import BackupError, restore_sqlite

        store = _sqlite_store(settings)
        if Path(store).exists() and Path(store).stat().st_size > 0 and not force:
            raise click.ClickException(f"{store} already holds a store: --force replaces it with {path}")
        try:
            restore_sqlite(path, store)
        except BackupError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"restored {store} from {path}")


def _sqlite_store(settings: Settings) -> str:
    if not settings.storage_url.startswith("sqlite:"):
        raise click.ClickException(MONGODB_BACKUPS)
    return sqlite_path(settings.storage_url)
