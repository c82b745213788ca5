"""Alembic migrations shipped inside the package, run programmatically (no alembic.ini on disk).

How to add a revision: see README.md in this folder. Alembic is imported only where a migration may run: it is
10 MB of a process's memory, and on most starts the schema is already at the newest revision (`newest_revision`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, inspect, text

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

# The revision equal to the schema of the release before Alembic (its `schema_version` table said 1).
BASELINE = "baseline"
# Revision files are named by date, so `ls versions/` reads in the order they were written.
FILE_TEMPLATE = "%%(year)d_%%(month).2d_%%(day).2d_%%(hour).2d%%(minute).2d-%%(rev)s_%%(slug)s"
VERSIONS = Path(__file__).with_name("versions")


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer bookingbot than this one."""


def alembic_config() -> Config:
    """Alembic's configuration for the migrations in this package."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "scheduling:migrations")
    config.set_main_option("file_template", FILE_TEMPLATE)
    return config


def newest_revision() -> str:
    """The newest revision's id, read off the dated file names without Alembic (a test holds it to `head_revision`)."""
    newest = max(path.name for path in VERSIONS.glob("*.py") if path.name != "__init__.py")
    return newest.split("-", 1)[1].split("_", 1)[0]


def at_newest(connection: Connection) -> bool:
    """The database is at this program's newest revision: there is nothing to migrate."""
    if not inspect(connection).has_table("alembic_version"):
        return False
    recorded = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return list(recorded) == [newest_revision()]


def head_revision() -> str:
    """The newest revision this program knows."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("no migrations found in scheduling/migrations/versions")
    return head


def upgrade(connection: Connection) -> None:
    """Bring the database on `connection` to the newest revision, inside the caller's transaction.

    The caller holds the schema lock. A database from the release before Alembic is stamped at the
    baseline first, so its data stays and only later revisions run.
    """
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    config = alembic_config()
    config.attributes["connection"] = connection
    tables = set(inspect(connection).get_table_names())
    if "schema_version" in tables and "alembic_version" not in tables:
        version = connection.execute(text("SELECT version FROM schema_version WHERE id = 1")).scalar()
        if version != 1:
            raise SchemaTooNew(f"database schema version {version} is unknown to this program")
        command.stamp(config, BASELINE)
    current = MigrationContext.configure(connection).get_current_heads()
    script = ScriptDirectory.from_config(config)
    for revision in current:
        try:
            script.get_revision(revision)
        except CommandError as exc:
            raise SchemaTooNew(
                f"the database is at schema revision {revision}, which this program does not know: "
                "it was upgraded by a newer bookingbot; install that version again"
            ) from exc
    command.upgrade(config, "head")
    after = MigrationContext.configure(connection).get_current_heads()
    if tuple(after) != tuple(current):
        log.info("database schema upgraded from %s to %s", ", ".join(current) or "nothing", ", ".join(after))
