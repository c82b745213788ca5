"""Alembic migrations shipped inside the package, run programmatically (no alembic.ini on disk).

How to add a revision: see README.md in this folder.
"""

from __future__ import annotations

import logging

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, inspect, text

log = logging.getLogger(__name__)

# The revision equal to the schema of the release before Alembic (its `schema_version` table said 1).
BASELINE = "baseline"
# Revision files are named by date, so `ls versions/` reads in the order they were written.
FILE_TEMPLATE = "%%(year)d_%%(month).2d_%%(day).2d_%%(hour).2d%%(minute).2d-%%(rev)s_%%(slug)s"


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer bookingbot than this one."""


def alembic_config() -> Config:
    """Alembic's configuration for the migrations in this package."""
    config = Config()
    config.set_main_option("script_location", "scheduling:migrations")
    config.set_main_option("file_template", FILE_TEMPLATE)
    return config


def head_revision() -> str:
    """The newest revision this program knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("no migrations found in scheduling/migrations/versions")
    return head


def upgrade(connection: Connection) -> None:
    """Bring the database on `connection` to the newest revision, inside the caller's transaction.

    The caller holds the schema lock. A database from the release before Alembic is stamped at the
    baseline first, so its data stays and only later revisions run.
    """
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
