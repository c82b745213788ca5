"""Database engine, schema and ORM models (SQLite by default, PostgreSQL for larger practices)."""

from __future__ import annotations

import contextlib
import os
import weakref
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    event,
    false,
    text,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator

from scheduling import sqlite_inline
from scheduling.locks import CAPACITY
from scheduling.migrations import at_newest, upgrade
from scheduling.model import Status

# PostgreSQL connections kept per process, and as many again opened beyond them under load: half the updates a
# process works on at once. At SQLAlchemy's default of 5, every connection past the fifth was opened and closed
# per transaction, which cost more than the transaction; two processes stay well inside PostgreSQL's default of
# 100 connections.
PG_POOL = CAPACITY // 2
# Held while migrating the schema on PostgreSQL so two starting processes do not race.
_SCHEMA_LOCK_KEY = 0x626F6F6B  # "book"

_DRIVERS = {
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes stored as UTC; always read back as aware UTC, SQLite included."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            # A naive time is ambiguous (server zone? location zone?): refuse it.
            raise ValueError(f"naive datetime {value.isoformat()} cannot be stored; use aware UTC")
        value = value.astimezone(UTC)
        # SQLite compares datetimes as text, so every value must have the same naive UTC form.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class StatusType(TypeDecorator[Status]):
    """An appointment status stored as its plain string value."""

    impl = String(16)
    cache_ok = True

    def process_bind_param(self, value: Status | str | None, dialect: Dialect) -> str | None:
        return None if value is None else Status(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> Status | None:
        return None if value is None else Status(value)


class JSONText(TypeDecorator[dict[str, Any]]):
    """A JSON object kept as text, so SQLite and PostgreSQL store it the same way."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: dict[str, Any] | None, dialect: Dialect) -> str | None:
        # orjson writes what json.dumps(ensure_ascii=False, separators=(",", ":")) wrote, in a fifth of the time.
        return None if value is None else orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()

    def process_result_value(self, value: str | None, dialect: Dialect) -> dict[str, Any] | None:
        return None if value is None else orjson.loads(value)


def dialect_insert(dialect_name: str, table: Any) -> Any:
    """An INSERT with the dialect's ON CONFLICT clauses: PostgreSQL's, or SQLite's for the other name."""
    if dialect_name != "postgresql":
        return sqlite_insert(table)
    # Imported here: SQLAlchemy's PostgreSQL dialect is 2 MB of memory a bot on SQLite never uses.
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    return pg_insert(table)


class Base(DeclarativeBase):
    type_annotation_map = {  # noqa: RUF012 (SQLAlchemy reads this class attribute)
        datetime: UTCDateTime,
        Status: StatusType,
        dict[str, Any]: JSONText,
    }


class ClientRow(Base):
    __tablename__ = "clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    telegram_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    # Filled in step by step by the dialog, so a fresh client has none of them yet.
    name: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(40))
    email: Mapped[str | None] = mapped_column(String(320))
    language: Mapped[str | None] = mapped_column(String(16))
    # Who created a record without Telegram ("specialist:<id>"); None for clients who came through the bot.
    created_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # The client's data was erased (on their request or after the retention time): the row stays, anonymous,
    # so the history of the practice's appointments stays whole.
    erased_at: Mapped[datetime | None]


class ConsentRow(Base):
    """One consent a client gave: to the terms and privacy policy, or to the processing of health data in notes."""

    __tablename__ = "consents"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    policy_version: Mapped[str] = mapped_column(String(64))
    # "terms" (terms of service and privacy policy) or "health" (health information in the client's notes).
    kind: Mapped[str] = mapped_column(String(16), default="terms", server_default="terms")
    accepted_at: Mapped[datetime]
    # Withdrawn in /privacy: it counts no more, and the record of it stays.
    withdrawn_at: Mapped[datetime | None]


class SeriesRow(Base):
    """A recurring visit: the rule of one calendar resource whose occurrences are appointment rows."""

    __tablename__ = "series"

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(255), unique=True)  # the calendar resource's UID
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    specialist_id: Mapped[str] = mapped_column(String(64), index=True)
    service_id: Mapped[str] = mapped_column(String(64))
    location_id: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    tzid: Mapped[str] = mapped_column(String(64))
    first_start: Mapped[datetime]  # the rule's DTSTART
    duration_minutes: Mapped[int]
    interval_weeks: Mapped[int]
    count: Mapped[int | None]
    until: Mapped[datetime | None]
    sequence: Mapped[int] = mapped_column(default=0)
    # The series this one was split from ("this and the following"), for the history.
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("series.id"))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    client: Mapped[ClientRow] = relationship(lazy="joined", innerjoin=True)


class GroupRow(Base):
    """A group session: one visit whose seats are appointment rows, shown as one calendar event."""

    __tablename__ = "group_sessions"
    __table_args__ = (
        # One session per specialist, service, place and start: racing clients join the same one.
        UniqueConstraint("specialist_id", "start", "service_id", "location_id", name="uq_group_sessions_slot"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(255), unique=True)  # the calendar event's UID
    specialist_id: Mapped[str] = mapped_column(String(64))
    service_id: Mapped[str] = mapped_column(String(64))
    location_id: Mapped[str] = mapped_column(String(64))
    start: Mapped[datetime]
    end: Mapped[datetime]
    created_at: Mapped[datetime]


class AppointmentRow(Base):
    __tablename__ = "appointments"
    __table_args__ = (
        Index("ix_appointments_specialist_start", "specialist_id", "start"),
        Index("ix_appointments_status", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(255), unique=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    specialist_id: Mapped[str] = mapped_column(String(64))
    service_id: Mapped[str] = mapped_column(String(64))
    location_id: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    start: Mapped[datetime]
    end: Mapped[datetime]
    status: Mapped[Status]
    note: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(String(255))
    sequence: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    decline_reason: Mapped[str | None] = mapped_column(Text)
    request_chat_id: Mapped[int | None] = mapped_column(BigInteger)
    request_message_id: Mapped[int | None] = mapped_column(BigInteger)
    # Booked as "first available": a move may go to any specialist.
    first_available: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Cancelled by the client after the specialist's free-cancellation limit (the practice may charge).
    cancelled_late: Mapped[bool] = mapped_column(default=False, server_default=false())
    # A request to move that appointment here; it holds the new time until the specialist decides.
    replaces_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"), index=True)
    # An occurrence of a series: the series, and the instance of its rule this row is (its RECURRENCE-ID).
    series_id: Mapped[int | None] = mapped_column(ForeignKey("series.id"), index=True)
    recurrence_id: Mapped[datetime | None]
    # A seat in a group session: the session's event in the calendar stands for all its seats.
    group_id: Mapped[int | None] = mapped_column(ForeignKey("group_sessions.id"), index=True)
    # Calendar sync state (see scheduling/calendar_sync.py): where and when we last wrote the event,
    # when a read last showed it, and since when reads have not.
    calendar_url: Mapped[str | None] = mapped_column(String(1000))
    written_at: Mapped[datetime | None]
    seen_at: Mapped[datetime | None]
    missing_since: Mapped[datetime | None]
    # Staff flags (scheduling.model.Flag values, comma-separated); never shown to the client.
    flags: Mapped[str] = mapped_column(String(100), default="", server_default="")
    # A colleague asked to take this appointment over; it stays with specialist_id until they accept.
    reassign_to: Mapped[str | None] = mapped_column(String(64))
    # Loaded with the appointment (inner join): rows are used after their transaction has closed.
    client: Mapped[ClientRow] = relationship(lazy="joined", innerjoin=True)
    # Set for bookings a partner made through the HTTP API; written through Tx.partners only.
    partner_booking: Mapped[PartnerBookingRow | None] = relationship(lazy="joined", viewonly=True)
    # The group session of a seat (its event's UID names the shared video room too).
    group: Mapped[GroupRow | None] = relationship(lazy="joined", viewonly=True)


class TransitionRow(Base):
    __tablename__ = "transitions"

    id: Mapped[int] = mapped_column(primary_key=True)
    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointments.id"), index=True)
    from_status: Mapped[Status | None]
    to_status: Mapped[Status]
    actor: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime]
    # What changed, for the history: old and new time, overridden warnings, reassignment, notice given.
    details: Mapped[dict[str, Any] | None]


class StaffNoteRow(Base):
    """A note by the practice's staff about a client (and one of their appointments); never shown to the client."""

    __tablename__ = "staff_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"), index=True)
    author: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime]


class DraftRow(Base):
    __tablename__ = "drafts"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    data: Mapped[dict[str, Any]]
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[datetime]


class QueueColumns:
    """The delivery state of a durable queue row (scheduling.queue claims, leases and retries them)."""

    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    locked_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    done_at: Mapped[datetime | None]


class OutboxRow(QueueColumns, Base):
    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "done_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointments.id"), index=True)
    specialist_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    # Staff were told this write keeps failing (once per row).
    alerted_at: Mapped[datetime | None]


class CalendarIncidentRow(Base):
    """Many events of one calendar vanished at once: nothing was cancelled, staff are asked what happened."""

    __tablename__ = "calendar_incidents"

    id: Mapped[int] = mapped_column(primary_key=True)
    specialist_id: Mapped[str] = mapped_column(String(64), index=True)
    appointments: Mapped[dict[str, Any]]  # {"ids": [...]}
    created_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    resolution: Mapped[str | None] = mapped_column(String(16))  # "restored" | "cancelled"
    resolved_by: Mapped[str | None] = mapped_column(String(100))


class ReminderRow(Base):
    """A reminder sent to the client; the key makes each one go out once, whichever process sends it."""

    __tablename__ = "reminders"

    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointments.id"), primary_key=True)
    minutes_before: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    sent_at: Mapped[datetime]


class PartnerClientRow(Base):
    """A partner's client, known by the partner's own reference: a returning client is the same client row."""

    __tablename__ = "partner_clients"
    __table_args__ = (UniqueConstraint("partner_id", "client_ref", name="uq_partner_clients_ref"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[str] = mapped_column(String(64))
    client_ref: Mapped[str] = mapped_column(String(200))
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)


class PartnerBookingRow(Base):
    """What makes an appointment a partner's booking: who booked it, under which key, until when it may be refused."""

    __tablename__ = "partner_bookings"
    __table_args__ = (
        UniqueConstraint("public_id", name="uq_partner_bookings_public_id"),
        # A retried POST with the same Idempotency-Key can never make a second booking.
        UniqueConstraint("partner_id", "idempotency_key", name="uq_partner_bookings_idempotency"),
    )

    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointments.id"), primary_key=True, autoincrement=False)
    public_id: Mapped[str] = mapped_column(String(32))
    partner_id: Mapped[str] = mapped_column(String(64), index=True)
    client_ref: Mapped[str] = mapped_column(String(200))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    refusal_until: Mapped[datetime]
    refused_at: Mapped[datetime | None]
    # The specialist's Telegram notice: claimed when sent, closed when its Refuse button was taken away.
    notified_at: Mapped[datetime | None]
    notice_closed_at: Mapped[datetime | None]
    # The partner cancelled for its client; the specialist is told once (claimed like the notice).
    partner_cancelled_at: Mapped[datetime | None]
    cancel_told_at: Mapped[datetime | None]


class PartnerEventRow(QueueColumns, Base):
    """One change of a partner booking: the changes feed, and a webhook delivery queued like the outbox."""

    __tablename__ = "partner_events"
    __table_args__ = (
        Index("ix_partner_events_due", "done_at", "next_attempt_at"),
        Index("ix_partner_events_feed", "partner_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[str] = mapped_column(String(64))
    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointments.id"), index=True)
    event: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class MessageRow(Base):
    """A message between a client and a specialist about an appointment, kept only until delivered."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointments.id"), index=True)
    to_client: Mapped[bool]  # False: from the client to the specialist
    sender: Mapped[str] = mapped_column(String(100))  # "client:<id>", "specialist:<telegram id>", "admin:<...>"
    text: Mapped[str] = mapped_column(Text)
    relayed: Mapped[bool] = mapped_column(default=False)  # part of a chat visit: shown without buttons
    created_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(default=0)


class WaitingRow(Base):
    """A client waiting for an earlier time (the "ASAP" flag), and the offer they hold, if any."""

    __tablename__ = "waiting_list"
    __table_args__ = (Index("ix_waiting_list_status", "status", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    service_id: Mapped[str] = mapped_column(String(64))
    location_id: Mapped[str] = mapped_column(String(64))
    specialist_id: Mapped[str | None] = mapped_column(String(64))  # None: any specialist offering the service
    first_day: Mapped[date] = mapped_column(Date)  # local dates, inclusive
    last_day: Mapped[date] = mapped_column(Date)
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))  # move this visit earlier
    status: Mapped[str] = mapped_column(String(16))  # waiting, offered, done, left
    created_at: Mapped[datetime]
    offer_start: Mapped[datetime | None]
    offer_specialist: Mapped[str | None] = mapped_column(String(64))
    offer_expires_at: Mapped[datetime | None]
    offer_chat_id: Mapped[int | None] = mapped_column(BigInteger)
    offer_message_id: Mapped[int | None] = mapped_column(BigInteger)
    # Offers this client let lapse or turned down ("<specialist>|<iso start>"), never offered again.
    passed: Mapped[dict[str, Any]] = mapped_column(default=dict)


class EmailRow(Base):
    """An e-mail to a client waiting to be sent; deleted once it is (nothing is kept after)."""

    __tablename__ = "emails"
    __table_args__ = (Index("ix_emails_due", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    ics: Mapped[str | None] = mapped_column(Text)  # the attached calendar file, if any
    created_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    locked_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(500))


class ClientSendsRow(Base):
    """How often a client pressed Send lately: one counting window per client, shared by every process."""

    __tablename__ = "client_sends"

    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), primary_key=True, autoincrement=False)
    window_start: Mapped[datetime]
    count: Mapped[int] = mapped_column(default=0)


class SpecialistLockRow(Base):
    __tablename__ = "specialist_locks"

    specialist_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(default=0)


class CalendarConnectionRow(Base):
    """A specialist's sign-in to Google or Microsoft: sealed tokens and the calendars they chose."""

    __tablename__ = "calendar_connections"

    specialist_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    account: Mapped[str] = mapped_column(String(320), default="")
    tokens: Mapped[str] = mapped_column(Text)  # sealed with BOOKINGBOT_TOKEN_KEY
    # {"found": [{"id", "name", "writable"}], "booking": id, "busy": [ids]}
    calendars: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(16))  # choosing | connected | revoked
    chat_id: Mapped[int | None] = mapped_column(BigInteger)
    revoked_told: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[datetime]


class SignInRow(Base):
    """A sign-in link handed out and not yet used; any process may complete it."""

    __tablename__ = "oauth_sign_ins"

    state: Mapped[str] = mapped_column(String(64), primary_key=True)
    specialist_id: Mapped[str] = mapped_column(String(64))
    provider: Mapped[str] = mapped_column(String(16))
    verifier: Mapped[str] = mapped_column(Text)  # sealed
    redirect_uri: Mapped[str] = mapped_column(String(512))
    chat_id: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime]


class RemoteEventRow(Base):
    """Where a provider that names events itself (Microsoft Graph) keeps each appointment's event."""

    __tablename__ = "remote_events"

    uid: Mapped[str] = mapped_column(String(255), primary_key=True)
    specialist_id: Mapped[str] = mapped_column(String(64), index=True)
    remote_id: Mapped[str] = mapped_column(String(512))
    calendar_id: Mapped[str] = mapped_column(String(512))


class FeedTokenRow(Base):
    """How often a specialist's feed address was renewed: the token is derived from feed.key and this count."""

    __tablename__ = "feed_tokens"

    specialist_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    generation: Mapped[int] = mapped_column(default=0)
    rotated_at: Mapped[datetime]


def async_url(url: str) -> URL:
    """Map plain `postgresql://` and `sqlite:///` URLs to their asyncio drivers."""
    parsed = make_url(url)
    driver = _DRIVERS.get(parsed.drivername)
    if driver is None:
        raise ValueError(f"unsupported database driver {parsed.drivername!r}: use sqlite or postgresql")
    return parsed.set(drivername=driver)


def _is_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:")


def private_dir(path: Path) -> Path:
    """Create the folder readable by this user only (0700), and tighten it if it is already there."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o700)
    except PermissionError:
        pass  # someone else's folder (a mounted volume): its owner decides
    return path


def _private_database(path: Path) -> None:
    """The SQLite file and its WAL and shared-memory files, 0600: clients' data is health data.

    Created empty with 0600 before SQLite opens it: SQLite gives -wal and -shm its file's mode.
    """
    # A new folder for it is private; an existing one (the working directory, say) is left as it is.
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            if file.stat().st_mode & 0o077:
                os.chmod(file, 0o600)


def make_engine(url: str, *, busy_timeout: float = 30.0, **engine_kwargs: Any) -> AsyncEngine:
    """An async engine; SQLite gets WAL, foreign keys and a busy timeout for sharing between processes.

    SQL parameters never reach a log or an exception's message (`hide_parameters`): they are clients' data.
    """
    parsed = async_url(url)
    engine_kwargs.setdefault("hide_parameters", True)
    if parsed.get_backend_name() == "postgresql":
        engine_kwargs.setdefault("pool_pre_ping", True)
        engine_kwargs.setdefault("pool_size", PG_POOL)
        engine_kwargs.setdefault("max_overflow", PG_POOL)
        return create_async_engine(parsed, **engine_kwargs)

    if _is_memory(parsed):
        # Every connection to ":memory:" is a new empty database: share one.
        engine_kwargs.setdefault("poolclass", StaticPool)
        database = ":memory:"
    else:
        path = Path(parsed.database or "").expanduser().resolve()
        _private_database(path)
        database = str(path)
    # Statements run on the loop's thread; a wait for a lock (the busy timeout) on the connection's own.
    connect = sqlite_inline.connector(database, busy_timeout)
    engine_kwargs.setdefault("async_creator", connect)
    engine = create_async_engine(parsed, **engine_kwargs)

    @event.listens_for(engine.sync_engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        if not _is_memory(parsed):
            cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute(_SQLITE_PER_CONNECTION)
        cursor.close()

    if not _is_memory(parsed):

        async def open_outside_pool() -> sqlite_inline.InlineConnection:
            conn = await connect()
            await conn.execute(_SQLITE_PER_CONNECTION)
            return conn

        _SQLITE_OPENERS[engine.sync_engine] = open_outside_pool
    return engine


# What each SQLite connection needs set (WAL is a property of the file, set once).
_SQLITE_PER_CONNECTION = "PRAGMA foreign_keys = ON"
_SQLITE_OPENERS: weakref.WeakKeyDictionary[Engine, Callable[[], Awaitable[sqlite_inline.InlineConnection]]] = (
    weakref.WeakKeyDictionary()
)


def sqlite_opener(engine: AsyncEngine) -> Callable[[], Awaitable[sqlite_inline.InlineConnection]] | None:
    """Opens connections to the engine's SQLite file outside its pool, set up as the pool's are (None: not a file)."""
    return _SQLITE_OPENERS.get(engine.sync_engine)


async def _take_schema_lock(conn: AsyncConnection) -> None:
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY})
    else:
        # The driver opens transactions lazily; take SQLite's write lock now so a
        # second process waits here instead of racing on CREATE TABLE.
        await conn.exec_driver_sql("BEGIN IMMEDIATE")


async def create_schema(engine: AsyncEngine) -> None:
    """Create or upgrade the schema to the newest Alembic revision; safe on every start, concurrently.

    Schema changes are revisions in `scheduling/migrations/versions/` (see the README there).
    """
    async with engine.connect() as conn:
        if await conn.run_sync(at_newest):
            return
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            # SQLite alters a table by copying it; foreign keys would refuse the drop of the old copy.
            # The pragma only takes effect outside a transaction, hence before BEGIN.
            await conn.exec_driver_sql("PRAGMA foreign_keys = OFF")
        try:
            await _take_schema_lock(conn)
            await conn.run_sync(upgrade)
            if sqlite:
                broken = (await conn.exec_driver_sql("PRAGMA foreign_key_check")).all()
                if broken:
                    raise RuntimeError(f"a migration left rows pointing nowhere: {broken[:5]}")
            await conn.commit()
        finally:
            if sqlite:
                await conn.rollback()
                await conn.exec_driver_sql("PRAGMA foreign_keys = ON")
