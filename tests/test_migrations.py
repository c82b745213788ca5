"""Schema migrations: Alembic revisions build the models' schema and carry a first-release database over."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from scheduling.db import Base, create_schema, make_engine
from scheduling.migrations import BASELINE, SchemaTooNew, alembic_config, head_revision, newest_revision
from scheduling.model import Status
from scheduling.store import Store
from tests.fixtures import release_0_1 as old

T0 = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # the night Europe switches to summer time


def _differences(sync_conn: sa.Connection) -> list[Any]:
    context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
    return compare_metadata(context, Base.metadata)


async def schema_state(url: str) -> tuple[set[str], list[str], list[Any]]:
    """Tables, recorded revisions and differences from the models, as the database has them now."""
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            tables = set(await conn.run_sync(lambda sync: sa.inspect(sync).get_table_names()))
            revisions = list((await conn.exec_driver_sql("SELECT version_num FROM alembic_version")).scalars())
            differences = await conn.run_sync(_differences)
    finally:
        await engine.dispose()
    return tables, revisions, differences


def test_revisions_form_one_line_from_the_baseline() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    revisions = list(script.walk_revisions())
    # Two heads mean two engineers chained on the same revision: point the newer one at the other.
    assert len(script.get_heads()) == 1, f"several heads {script.get_heads()}: chain one revision on the other"
    assert revisions[-1].revision == BASELINE
    assert all(r.down_revision is not None for r in revisions[:-1])


def test_the_newest_file_holds_the_head() -> None:
    # A start skips Alembic when the database records this revision (scheduling.db.create_schema).
    assert newest_revision() == head_revision(), "rename the newest revision's file so it sorts last"


async def test_empty_database_upgrades_to_the_models(db_url: str) -> None:
    engine_a, engine_b = make_engine(db_url), make_engine(db_url)
    try:
        # Two processes starting at once on an empty database, then a restart.
        await asyncio.gather(create_schema(engine_a), create_schema(engine_b))
        await create_schema(engine_a)
    finally:
        await engine_a.dispose()
        await engine_b.dispose()
    tables, revisions, differences = await schema_state(db_url)
    assert differences == [], "the models changed without an Alembic revision (see scheduling/migrations/README.md)"
    assert revisions == [head_revision()]
    assert "schema_version" not in tables


# A later start, as `bookingbot run` makes it: whether Alembic was loaded.
_RESTART = """
import asyncio, os, sys
from scheduling.db import create_schema, make_engine

async def start():
    engine = make_engine(os.environ["DB_URL"])
    await create_schema(engine)
    await engine.dispose()

asyncio.run(start())
print("alembic" in sys.modules)
"""


async def test_a_start_at_the_newest_revision_does_not_load_alembic(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        await create_schema(engine)
    finally:
        await engine.dispose()
    restart = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", _RESTART],
        env={**os.environ, "DB_URL": db_url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (restart.returncode, restart.stdout.strip()) == (0, "False"), restart.stderr


def _down_and_up(sync_conn: sa.Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = sync_conn
    command.downgrade(config, "base")
    assert set(sa.inspect(sync_conn).get_table_names()) <= {"alembic_version"}
    command.upgrade(config, "head")


async def test_every_revision_steps_down_and_up_again(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        await create_schema(engine)
        async with engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                await conn.exec_driver_sql("PRAGMA foreign_keys = OFF")
            await conn.run_sync(_down_and_up)
            await conn.commit()
    finally:
        await engine.dispose()
    _tables, revisions, differences = await schema_state(db_url)
    assert (revisions, differences) == ([head_revision()], [])


def first_release_rows() -> dict[sa.Table, list[dict[str, Any]]]:
    """A little of everything a practice on the first release has: a visit, its history, a draft, a queued write."""
    return {
        old.CLIENTS: [
            {
                "id": 1,
                "telegram_id": 5_000_000_001,
                "name": "Zofia Łukasik",
                "phone": "+48 600 100 200",
                "email": "zofia@example.org",
                "language": "pl",
                "created_at": T0,
                "updated_at": T0,
            },
            {
                "id": 2,
                "telegram_id": None,
                "name": None,
                "phone": None,
                "email": None,
                "language": None,
                "created_at": T0,
                "updated_at": T0,
            },
        ],
        old.CONSENTS: [{"id": 1, "client_id": 1, "policy_version": "2026-01", "accepted_at": T0}],
        old.APPOINTMENTS: [
            {
                "id": 7,
                "uid": "a7@bookingbot",
                "client_id": 1,
                "specialist_id": "anna",
                "service_id": "consultation",
                "location_id": "centre",
                "channel": "on_site",
                "start": T0 + timedelta(hours=2),
                "end": T0 + timedelta(hours=3),
                "status": "confirmed",
                "note": "first visit — stairs are hard",
                "source": "flyer",
                "sequence": 2,
                "created_at": T0,
                "updated_at": T0,
                "expires_at": None,
                "decline_reason": None,
                "request_chat_id": 5_000_000_002,
                "request_message_id": 42,
            },
        ],
        old.TRANSITIONS: [
            {
                "id": 1,
                "appointment_id": 7,
                "from_status": None,
                "to_status": "requested",
                "actor": "client:1",
                "reason": None,
                "at": T0,
            },
            {
                "id": 2,
                "appointment_id": 7,
                "from_status": "requested",
                "to_status": "confirmed",
                "actor": "specialist:anna",
                "reason": None,
                "at": T0 + timedelta(minutes=5),
            },
        ],
        old.DRAFTS: [
            {
                "chat_id": 5_000_000_003,
                "data": '{"step":"day","service":"consultation"}',
                "message_id": 9,
                "updated_at": T0,
            }
        ],
        old.OUTBOX: [
            {
                "id": 1,
                "appointment_id": 7,
                "specialist_id": "anna",
                "created_at": T0,
                "attempts": 3,
                "next_attempt_at": T0 + timedelta(minutes=1),
                "locked_until": None,
                "last_error": "503 from the calendar",
                "done_at": None,
            }
        ],
        old.REMINDERS: [{"appointment_id": 7, "minutes_before": 1440, "sent_at": T0}],
        old.SPECIALIST_LOCKS: [{"specialist_id": "anna", "version": 4}],
    }


async def make_first_release_database(url: str, rows: dict[sa.Table, list[dict[str, Any]]]) -> None:
    """A database as the first release left it: its tables, `schema_version` 1 and data."""
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(old.METADATA.create_all)
            await conn.execute(old.SCHEMA_VERSION.insert().values(id=1, version=1))
            for table, values in rows.items():
                await conn.execute(table.insert(), values)
    finally:
        await engine.dispose()


async def read_rows(url: str, tables: list[sa.Table]) -> dict[sa.Table, list[dict[str, Any]]]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return {
                table: [dict(row._mapping) for row in await conn.execute(sa.select(table).order_by(*table.primary_key))]
                for table in tables
            }
    finally:
        await engine.dispose()


async def test_first_release_database_is_upgraded_with_its_data(db_url: str) -> None:
    rows = first_release_rows()
    await make_first_release_database(db_url, rows)
    before = await read_rows(db_url, list(rows))

    engine = make_engine(db_url)
    try:
        await create_schema(engine)
        await create_schema(engine)  # the next start finds nothing to do
        store = Store(engine)
        async with store.tx() as tx:
            appt = await tx.get_appointment(7)
            history = await tx.transitions(7)
            draft = await tx.get_draft(5_000_000_003)
            client = await tx.client_by_telegram(5_000_000_001)
    finally:
        await engine.dispose()

    assert await read_rows(db_url, list(rows)) == before
    tables, revisions, differences = await schema_state(db_url)
    assert (revisions, differences) == ([head_revision()], [])
    assert "schema_version" not in tables
    # The data reads back through today's code as the first release wrote it.
    assert appt is not None and client is not None and draft is not None
    assert (appt.start, appt.end, appt.status) == (T0 + timedelta(hours=2), T0 + timedelta(hours=3), Status.CONFIRMED)
    assert (appt.client.name, appt.note, appt.sequence) == ("Zofia Łukasik", "first visit — stairs are hard", 2)
    assert [(t.from_status, t.to_status) for t in history] == [
        (None, Status.REQUESTED),
        (Status.REQUESTED, Status.CONFIRMED),
    ]
    assert draft.data == {"step": "day", "service": "consultation"}


async def test_database_from_a_newer_release_is_refused(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        await create_schema(engine)
        async with engine.begin() as conn:
            await conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'f00dfeedbeef'")
        with pytest.raises(SchemaTooNew, match="f00dfeedbeef"):
            await create_schema(engine)
    finally:
        await engine.dispose()


async def test_unknown_schema_version_of_the_first_release_is_refused(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(old.METADATA.create_all)
            await conn.execute(old.SCHEMA_VERSION.insert().values(id=1, version=2))
        with pytest.raises(SchemaTooNew, match="version 2"):
            await create_schema(engine)
        async with engine.connect() as conn:
            tables = set(await conn.run_sync(lambda sync: sa.inspect(sync).get_table_names()))
        assert "alembic_version" not in tables  # refused before touching anything
    finally:
        await engine.dispose()
