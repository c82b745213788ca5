"""`bookingbot backup` and `bookingbot restore`: the data folder and the SQLite database in one archive.

The archive (tar.gz) holds `manifest.json`, `database.sqlite3` (SQLite's online backup: consistent while
the bot runs) and `data/` (the rest of the data folder: embedded calendars copied under Radicale's storage
lock, their credentials, feed.key, ...). The database is copied first: a calendar event newer than the
database copy is only busy time after a restore, while a database row newer than the calendars would be
an appointment whose event is missing. PostgreSQL is backed up with its own tools (pg_dump), see
docs/operating.md; the archive then holds the data folder only.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import make_url

from bot.settings import Settings
from scheduling.db import async_url

FORMAT = 1
MANIFEST = "manifest.json"
DATABASE = "database.sqlite3"
DATA = "data"
# Not worth keeping (rewritten on every start, or logs), or the live database (copied by the backup API).
SKIP_NAMES = {"radicale.log", "config", "users", ".Radicale.lock"}
SKIP_SUFFIXES = ("-wal", "-shm", "-journal", ".tmp")


class BackupError(Exception):
    """The backup or restore cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class Summary:
    archive: Path
    database: str  # "sqlite" or "postgresql"
    files: int


def sqlite_path(settings: Settings) -> Path | None:
    """The SQLite database file, or None when the database is PostgreSQL."""
    url = async_url(settings.db_url)
    if url.get_backend_name() != "sqlite":
        return None
    if url.database in (None, "", ":memory:"):
        raise BackupError("an in-memory database has nothing to back up")
    return Path(url.database).expanduser().resolve()


def _online_backup(source: Path, target: Path) -> str | None:
    """Copy a live SQLite database page by page (its backup API); return its schema revision."""
    src = sqlite3.connect(source, timeout=30)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
        try:
            row = dst.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.OperationalError:
            row = None
    finally:
        src.close()
        dst.close()
    return row[0] if row else None


@contextlib.contextmanager
def _calendar_storage_locked(collections: Path) -> Iterator[None]:
    """Hold Radicale's storage lock for reading: its writes wait, so the copy is one state of the calendars."""
    lock_path = collections / ".Radicale.lock"
    if not collections.is_dir():
        yield
        return
    with lock_path.open("a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _data_files(data_dir: Path, skip: set[Path]) -> list[Path]:
    files = []
    for path in sorted(data_dir.rglob("*")):
        if not path.is_file() or path in skip:
            continue
        if path.name in SKIP_NAMES or path.name.endswith(SKIP_SUFFIXES):
            continue
        files.append(path)
    return files


def write_backup(settings: Settings, archive: Path, *, version: str) -> Summary:
    """Write one archive of the database (SQLite) and the data folder; never overwrites an existing file."""
    data_dir = settings.data_dir.resolve()
    if not data_dir.is_dir():
        raise BackupError(f"{data_dir}: no data folder here (BOOKINGBOT_DATA_DIR)")
    db = sqlite_path(settings)
    if db is not None and not db.exists():
        raise BackupError(f"{db}: no database here yet; nothing to back up")
    archive.parent.mkdir(parents=True, exist_ok=True)
    try:
        out = archive.open("xb")
    except FileExistsError:
        raise BackupError(f"{archive} exists already: choose a new name") from None
    manifest: dict[str, object] = {
        "format": FORMAT,
        "bookingbot": version,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": "sqlite" if db else "postgresql",
    }
    count = 0
    try:
        with out, tarfile.open(fileobj=out, mode="w:gz") as tar, tempfile.TemporaryDirectory() as scratch:
            if db is not None:
                copy = Path(scratch) / DATABASE
                manifest["schema_revision"] = _online_backup(db, copy)
                tar.add(copy, arcname=DATABASE)
            skip = {db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")} if db else set()
            with _calendar_storage_locked(data_dir / "radicale" / "collections"):
                for path in _data_files(data_dir, skip):
                    tar.add(path, arcname=f"{DATA}/{path.relative_to(data_dir).as_posix()}")
                    count += 1
            manifest["files"] = count
            body = json.dumps(manifest, indent=2).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mtime, info.mode = len(body), int(datetime.now(UTC).timestamp()), 0o600
            tar.addfile(info, io.BytesIO(body))
    except BaseException:
        archive.unlink(missing_ok=True)
        raise
    os.chmod(archive, 0o600)  # it holds passwords and personal data
    return Summary(archive, str(manifest["database"]), count)


def _read_manifest(tar: tarfile.TarFile, archive: Path) -> dict[str, object]:
    try:
        member = tar.extractfile(MANIFEST)
    except KeyError:
        member = None
    if member is None:
        raise BackupError(f"{archive}: not a bookingbot backup (no {MANIFEST})")
    manifest = json.loads(member.read())
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{archive}: backup format {manifest.get('format')} is unknown to this bookingbot")
    return manifest


def restore_backup(settings: Settings, archive: Path) -> Summary:
    """Unpack an archive into an empty data folder (and the SQLite file where the settings put it)."""
    data_dir = settings.data_dir.resolve()
    if data_dir.exists() and any(data_dir.iterdir()):
        raise BackupError(f"{data_dir} is not empty: restore into a new, empty data folder (BOOKINGBOT_DATA_DIR)")
    db = sqlite_path(settings)
    if db is not None and db.exists():
        raise BackupError(f"{db} exists already: restore only into an empty place")
    try:
        return _restore(settings, archive, data_dir, db)
    except (OSError, tarfile.TarError, json.JSONDecodeError) as exc:
        raise BackupError(f"{archive}: cannot restore it ({exc})") from None


def _restore(settings: Settings, archive: Path, data_dir: Path, db: Path | None) -> Summary:
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    # Unpacked beside the target first, so a broken archive leaves nothing half-restored.
    with tarfile.open(archive, mode="r:gz") as tar, tempfile.TemporaryDirectory(dir=data_dir.parent) as scratch:
        manifest = _read_manifest(tar, archive)
        has_db = manifest["database"] == "sqlite"
        if has_db and db is None:
            raise BackupError(
                f"{archive} holds a SQLite database but {make_url(settings.db_url).get_backend_name()} is set "
                "(BOOKINGBOT_DATABASE_URL): unset it to restore into SQLite"
            )
        # The "data" filter refuses absolute paths, links out of the folder and device files.
        tar.extractall(scratch, filter="data")
        unpacked = Path(scratch)
        files = [p for p in (unpacked / DATA).rglob("*") if p.is_file()] if (unpacked / DATA).is_dir() else []
        if (unpacked / DATA).is_dir():
            if data_dir.exists():
                data_dir.rmdir()
            shutil.move(unpacked / DATA, data_dir)
        else:
            data_dir.mkdir(exist_ok=True)
        os.chmod(data_dir, 0o700)
        if has_db and db is not None:
            db.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(unpacked / DATABASE, db)
    return Summary(archive, str(manifest["database"]), len(files))
