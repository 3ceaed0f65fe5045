"""Backups of what cannot be made again: the database and the loudspeaker signing key.

``flask --app wsgi backup DIR`` writes ``DIR/tongbao-<UTC time>/``, the owner's alone (0700,
files 0600): the database (SQLite: a consistent copy by SQLite's online backup API, taken while
the gateway runs; PostgreSQL: ``pg_dump --format=custom``), the signing key, and
``manifest.json`` (when, which database kind, the schema revision, each file's SHA-256).
``flask --app wsgi restore FOLDER`` checks the SHA-256s, then restores into the configured
database only when it is empty (a fresh SQLite file or a new PostgreSQL database; never over
live data), puts the signing key where ``SIGNING_KEY_PATH`` says unless a different key is there
already, and migrates the schema to this version. Redis holds nothing to back up: the
reconciler queues again whatever the database says is pending.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone

from alembic.runtime.migration import MigrationContext
from flask import Flask
from sqlalchemy import URL, inspect, make_url

from gateway.store import db

MANIFEST = "manifest.json"
SQLITE_FILE = "tongbao.db"
POSTGRES_FILE = "tongbao.dump"
KEY_FILE = "loudspeaker-signing-key.pem"


class BackupError(RuntimeError):
    """Why a backup or a restore did nothing, in words for the operator."""


@dataclass
class Restored:
    database: str
    schema_from: str | None
    signing_key: str  # "restored", "already there", "not in the backup"


def backup(app: Flask, parent: str) -> str:
    """Write a backup folder under ``parent``; returns its path."""
    url = make_url(app.config["DATABASE_URL"])
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    folder = os.path.join(parent, f"tongbao-{stamp}")
    os.makedirs(parent, mode=0o700, exist_ok=True)
    os.makedirs(folder, mode=0o700)
    if _kind(url) == "sqlite":
        _copy_sqlite(_sqlite_path(url), _private(os.path.join(folder, SQLITE_FILE)))
    else:
        _run(["pg_dump", "--format=custom", "--no-owner", "--file",
              _private(os.path.join(folder, POSTGRES_FILE))], url)
    key = app.config["SIGNING_KEY_PATH"]
    if os.path.exists(key):
        shutil.copyfile(key, _private(os.path.join(folder, KEY_FILE)))
    files = sorted(name for name in os.listdir(folder))
    manifest = {"made_at": stamp, "database": _kind(url), "schema": _revision(app),
                "files": {name: _sha256(os.path.join(folder, name)) for name in files}}
    with open(_private(os.path.join(folder, MANIFEST)), "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=2)
    return folder


def restore(app: Flask, folder: str) -> Restored:
    """Restore a backup folder into the configured, empty database (see the module)."""
    manifest = _checked_manifest(folder)
    url = make_url(app.config["DATABASE_URL"])
    if manifest["database"] != _kind(url):
        raise BackupError(f"the backup is of a {manifest['database']} database and DATABASE_URL "
                          f"is {_kind(url)}: restore into the same kind")
    engine = app.extensions["engine"]
    tables = inspect(engine).get_table_names()
    if tables:
        raise BackupError(f"the database {url.render_as_string(hide_password=True)} is not "
                          f"empty ({len(tables)} tables): restore into a new one, never over "
                          "live data")
    key_state = _restore_key(folder, manifest, app.config["SIGNING_KEY_PATH"])
    engine.dispose()
    if manifest["database"] == "sqlite":
        _copy_sqlite(os.path.join(folder, SQLITE_FILE), _sqlite_path(url))
    else:
        _run(["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error",
              os.path.join(folder, POSTGRES_FILE)], url)
    db.upgrade(engine)
    return Restored(manifest["database"], manifest["schema"], key_state)


def _checked_manifest(folder: str) -> dict:
    try:
        with open(os.path.join(folder, MANIFEST), encoding="utf-8") as handle:
            manifest = json.load(handle)
    except (OSError, ValueError) as error:
        raise BackupError(f"{folder} is no Tongbao backup: {MANIFEST} unreadable ({error})") \
            from None
    for name, digest in manifest["files"].items():
        path = os.path.join(folder, name)
        if not os.path.exists(path) or _sha256(path) != digest:
            raise BackupError(f"{path} is missing or changed since the backup (SHA-256 differs): "
                              "nothing was restored")
    return manifest


def _restore_key(folder: str, manifest: dict, target: str) -> str:
    if KEY_FILE not in manifest["files"]:
        return "not in the backup"
    source = os.path.join(folder, KEY_FILE)
    if os.path.exists(target):
        if _sha256(target) == _sha256(source):
            return "already there"
        raise BackupError(f"{target} holds another signing key: the loudspeakers trust the one "
                          "in the backup; move the other away first (nothing was restored)")
    os.makedirs(os.path.dirname(target) or ".", mode=0o700, exist_ok=True)
    shutil.copyfile(source, _private(target))
    return "restored"


def _kind(url: URL) -> str:
    return "sqlite" if url.get_backend_name() == "sqlite" else "postgresql"


def _sqlite_path(url: URL) -> str:
    return os.path.abspath(url.database)


def _copy_sqlite(source: str, target: str) -> None:
    """SQLite's online backup: a consistent copy even while workers write (WAL included)."""
    origin, copy = sqlite3.connect(source), sqlite3.connect(target)
    try:
        with copy:
            origin.backup(copy)
    finally:
        origin.close()
        copy.close()


def _run(command: list[str], url: URL) -> None:
    """pg_dump or pg_restore on ``url``; the password goes in the environment, not ``ps``."""
    environment = {**os.environ}
    if url.password:
        environment["PGPASSWORD"] = str(url.password)
    target = url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    done = subprocess.run([*command, "--dbname", target], env=environment, capture_output=True,
                          text=True)
    if done.returncode:
        raise BackupError(f"{command[0]} failed: {done.stderr.strip()[-500:]}")


def _revision(app: Flask) -> str | None:
    with app.extensions["engine"].connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _private(path: str) -> str:
    """Create ``path`` empty and owner-only (0600) before anything is written to it."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    os.chmod(path, 0o600)
    return path


def _sha256(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
