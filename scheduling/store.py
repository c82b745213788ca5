"""Short database transactions over the ORM models; queries only, the booking rules live elsewhere."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, delete, event, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import configure_mappers, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.util import await_

from scheduling import prepared
from scheduling.db import (
    AppointmentRow,
    ClientRow,
    DraftRow,
    GroupRow,
    OutboxRow,
    ReminderRow,
    SeriesRow,
    SpecialistLockRow,
    StaffNoteRow,
    TransitionRow,
    dialect_insert,
    sqlite_opener,
)
from scheduling.lifecycle import InvalidTransition, check_transition
from scheduling.model import ACTIVE_STATUSES, IN_CALENDAR, PENDING_STATUSES, Status
from scheduling.partner_store import PartnerTx
from scheduling.prepared import Hot
from scheduling.queue import RETRY_MAX, claim_queue, queue_done, queue_failed
from scheduling.store_groups import GroupQueries
from scheduling.store_limits import LimitQueries
from scheduling.store_privacy import CONSENTS_IN_FORCE, PrivacyQueries
from scheduling.store_series import SeriesQueries, new_uid
from scheduling.store_workspace import WorkspaceQueries
from scheduling.sync_store import CalendarSyncQueries

__all__ = ["RETRY_MAX", "AppointmentRow", "ClientRow", "QuickTx", "StaffNoteRow", "Store", "TransitionRow", "Tx"]


# Connections the hot path keeps open on a SQLite file: its statements never wait on the loop, so few overlap.
_KEEP_DRIVERS = 4

_DRAFTS = DraftRow.__table__
_CLIENTS = ClientRow.__table__
_CLIENT_COLUMNS = [c.key for c in _CLIENTS.columns]


@functools.cache
def _draft_upsert(dialect_name: str) -> Any:
    """The draft's upsert; built once per dialect, when first used (only the one in use is loaded)."""
    stmt = dialect_insert(dialect_name, _DRAFTS)
    return stmt.on_conflict_do_update(
        index_elements=[_DRAFTS.c.chat_id],
        set_={
            "data": stmt.excluded.data,
            "message_id": stmt.excluded.message_id,
            "updated_at": stmt.excluded.updated_at,
        },
    )


# The statements every update runs, built once: building one and working out its cache key cost about as
# much as running it. Values go in as execution parameters.
_GET_DRAFT = select(_DRAFTS.c.data, _DRAFTS.c.message_id, _DRAFTS.c.updated_at).where(
    _DRAFTS.c.chat_id == bindparam("chat")
)
_DRAFT_MESSAGE = (
    update(_DRAFTS)
    .where(_DRAFTS.c.chat_id == bindparam("chat"))
    .values(message_id=bindparam("message_id"), updated_at=bindparam("at"))
)
_DELETE_DRAFT = delete(_DRAFTS).where(_DRAFTS.c.chat_id == bindparam("chat"))
_CLIENT_BY_TELEGRAM = select(_CLIENTS).where(_CLIENTS.c.telegram_id == bindparam("telegram_id"))


def _dialect(ex: AsyncSession | AsyncConnection) -> str:
    return ex.bind.dialect.name if isinstance(ex, AsyncSession) else ex.dialect.name


async def _get_draft(ex: AsyncSession | AsyncConnection, chat_id: int) -> Any:
    """The draft row by Core, not as an ORM object: it is read on every update."""
    return (await ex.execute(_GET_DRAFT, {"chat": chat_id})).first()


async def _save_draft(
    ex: AsyncSession | AsyncConnection, chat_id: int, data: dict[str, Any], message_id: int | None, at: datetime | None
) -> None:
    params = {"chat_id": chat_id, "data": data, "message_id": message_id, "updated_at": at or datetime.now(UTC)}
    await ex.execute(_draft_upsert(_dialect(ex)), params)


def _overlapping(start: datetime, end: datetime) -> Any:
    return and_(AppointmentRow.start < end, AppointmentRow.end > start)


# Every Send reads these: built once with parameters (building one and its cache key costs CPU on every call).
_IN_RANGE = and_(AppointmentRow.start < bindparam("end"), AppointmentRow.end > bindparam("start"))
_ACTIVE = (
    or_(AppointmentRow.specialist_id == bindparam("spec"), AppointmentRow.reassign_to == bindparam("spec")),
    AppointmentRow.status.in_(ACTIVE_STATUSES),
    _IN_RANGE,
)
_ACTIVE_APPOINTMENTS = select(AppointmentRow).where(*_ACTIVE).order_by(AppointmentRow.start, AppointmentRow.id)
_ACTIVE_TIMES = (
    select(
        AppointmentRow.id,
        AppointmentRow.client_id,
        AppointmentRow.uid,
        AppointmentRow.specialist_id,
        AppointmentRow.service_id,
        AppointmentRow.location_id,
        AppointmentRow.start,
        AppointmentRow.end,
        AppointmentRow.group_id,
    )
    .where(*_ACTIVE)
    .order_by(AppointmentRow.start, AppointmentRow.id)
)
_KNOWN_UIDS = (
    select(AppointmentRow.uid, SeriesRow.uid, GroupRow.uid)
    .outerjoin(SeriesRow, SeriesRow.id == AppointmentRow.series_id)
    .outerjoin(GroupRow, GroupRow.id == AppointmentRow.group_id)
    .where(AppointmentRow.specialist_id == bindparam("spec"), _IN_RANGE)
)
_HOT_ACTIVE_TIMES = Hot(_ACTIVE_TIMES, _ACTIVE_TIMES.selected_columns)
_HOT_KNOWN_UIDS = Hot(_KNOWN_UIDS, _KNOWN_UIDS.selected_columns)


class Tx(SeriesQueries, GroupQueries, CalendarSyncQueries, WorkspaceQueries, PrivacyQueries, LimitQueries):
    """One open transaction; every method runs inside it."""

    def __init__(self, session: AsyncSession):
        self.session = session
        self.partners = PartnerTx(session)

    def _insert(self, table: Any) -> Any:
        return dialect_insert(self.session.bind.dialect.name, table)

    async def hot(self) -> prepared.CoreStatements | prepared.DriverStatements:
        """The transaction's connection for hot statements (scheduling.prepared), as session.execute would run
        them: the session's pending changes are flushed first."""
        if self.session.new or self.session.dirty or self.session.deleted:
            await self.session.flush()
        return await prepared.statements(await self.session.connection())

    # serialisation

    async def lock_specialist(self, specialist_id: str) -> None:
        """Serialise bookings of one specialist: call first in the transaction, held until it ends."""
        stmt = self._insert(SpecialistLockRow).values(specialist_id=specialist_id, version=1)
        stmt = stmt.on_conflict_do_update(
            index_elements=[SpecialistLockRow.specialist_id],
            set_={"version": SpecialistLockRow.version + 1},
        )
        await self.session.execute(stmt)

    # clients

    async def client_by_telegram(self, telegram_id: int) -> ClientRow | None:
        return await self.session.scalar(select(ClientRow).where(ClientRow.telegram_id == telegram_id))

    async def upsert_client(
        self,
        telegram_id: int,
        *,
        name: str | None = None,
        phone: str | None = None,
        email: str | None = None,
        language: str | None = None,
        at: datetime | None = None,
    ) -> ClientRow:
        """Create the client or update only the fields given; atomic against a concurrent first contact."""
        now = at or datetime.now(UTC)
        given = {
            k: v
            for k, v in {"name": name, "phone": phone, "email": email, "language": language}.items()
            if v is not None
        }
        stmt = self._insert(ClientRow).values(telegram_id=telegram_id, created_at=now, updated_at=now, **given)
        stmt = stmt.on_conflict_do_update(index_elements=[ClientRow.telegram_id], set_={**given, "updated_at": now})
        # The row as written comes back with the upsert (no second query), refreshing a copy the session holds.
        client = await self.session.scalar(stmt.returning(ClientRow), execution_options={"populate_existing": True})
        assert client is not None
        return client

    async def get_client(self, client_id: int) -> ClientRow | None:
        return await self.session.get(ClientRow, client_id)

    async def last_specialist(self, client_id: int) -> str | None:
        """The specialist of the client's most recent appointment (latest start) that was not called off.

        A declined, lapsed or cancelled request does not make someone the client's specialist.
        """
        return await self.session.scalar(_LAST_SPECIALIST, {"client": client_id})

    # appointments

    async def add_appointment(
        self,
        *,
        client_id: int,
        specialist_id: str,
        service_id: str,
        location_id: str,
        channel: str,
        start: datetime,
        end: datetime,
        note: str | None,
        source: str | None,
        expires_at: datetime | None,
        actor: str,
        at: datetime,
        first_available: bool = False,
        replaces_id: int | None = None,
        series_id: int | None = None,
        recurrence_id: datetime | None = None,
        group: GroupRow | None = None,
        status: Status = Status.REQUESTED,
        flags: str = "",
        details: dict[str, Any] | None = None,
        client: ClientRow | None = None,
    ) -> AppointmentRow:
        """A new appointment (`requested` unless said otherwise) with a fresh uid, its creation recorded.

        With `replaces_id` it is a request to move that appointment here; with `group`, a seat in that session.
        `client`: the client's row as this transaction read it already (else it is read here).
        """
        if client is None or client.id != client_id:
            client = await self.session.get(ClientRow, client_id)
        if client is None:
            raise LookupError(f"client {client_id} does not exist")
        appt = AppointmentRow(
            uid=new_uid(),
            client=client,
            specialist_id=specialist_id,
            service_id=service_id,
            location_id=location_id,
            channel=str(channel),
            start=start,
            end=end,
            status=status,
            note=note,
            source=source,
            sequence=0,
            created_at=at,
            updated_at=at,
            expires_at=expires_at,
            first_available=first_available,
            replaces_id=replaces_id,
            series_id=series_id,
            recurrence_id=recurrence_id,
            group_id=group.id if group is not None else None,
            flags=flags,
        )
        self.session.add(appt)
        await self.session.flush()
        self.session.add(
            TransitionRow(
                appointment_id=appt.id, from_status=None, to_status=status, actor=actor, at=at, details=details
            )
        )
        await self.session.flush()
        # Known without asking: a new appointment is nobody's partner booking until one is added.
        set_committed_value(appt, "partner_booking", None)
        set_committed_value(appt, "group", group)
        return appt

    async def get_appointment(self, appointment_id: int, *, for_update: bool = False) -> AppointmentRow | None:
        """One appointment; `for_update` row-locks it on PostgreSQL (SQLite locks on first write)."""
        stmt = select(AppointmentRow).where(AppointmentRow.id == appointment_id)
        if for_update:
            # Only the appointment: locking its client too would serialise unrelated work.
            stmt = stmt.with_for_update(of=AppointmentRow)
        return await self.session.scalar(stmt.execution_options(populate_existing=True))

    async def appointment_by_uid(self, uid: str) -> AppointmentRow | None:
        return await self.session.scalar(select(AppointmentRow).where(AppointmentRow.uid == uid))

    async def pending_moves(self, appointment_ids: Sequence[int]) -> dict[int, AppointmentRow]:
        """Undecided requests to move these appointments, by the id of the appointment each would move."""
        if not appointment_ids:
            return {}
        rows = await self.session.scalars(
            select(AppointmentRow).where(
                AppointmentRow.replaces_id.in_(appointment_ids), AppointmentRow.status == Status.REQUESTED
            )
        )
        return {row.replaces_id: row for row in rows if row.replaces_id is not None}

    async def active_appointments(self, specialist_id: str, start: datetime, end: datetime) -> list[AppointmentRow]:
        """Appointments holding the specialist's time in [start, end), by start.

        Active ones of their own, and those a colleague asked them to take over (held for both until decided).
        """
        rows = await self.session.scalars(_ACTIVE_APPOINTMENTS, {"spec": specialist_id, "start": start, "end": end})
        return list(rows)

    async def active_times(self, specialist_id: str, start: datetime, end: datetime) -> list[Any]:
        """active_appointments as plain rows (id, client_id, uid, specialist_id, service_id, location_id, start,
        end, group_id): what a booking's checks read, without loading ORM objects and their relations."""
        return await (await self.hot()).all(_HOT_ACTIVE_TIMES, {"spec": specialist_id, "start": start, "end": end})

    async def known_uids(self, specialist_id: str, start: datetime, end: datetime) -> set[str]:
        """Uids of our appointments overlapping the range and of their series and group sessions, whatever their
        status."""
        rows = await (await self.hot()).all(_HOT_KNOWN_UIDS, {"spec": specialist_id, "start": start, "end": end})
        return {uid for row in rows for uid in row if uid is not None}

    async def client_appointments(
        self, client_id: int, *, upcoming_from: datetime | None = None
    ) -> list[AppointmentRow]:
        """The client's appointments by start; with `upcoming_from`, only those not ended by then."""
        stmt = select(AppointmentRow).where(
            AppointmentRow.client_id == client_id, AppointmentRow.status != Status.DELETED
        )
        if upcoming_from is not None:
            stmt = stmt.where(AppointmentRow.end > upcoming_from)
        rows = await self.session.scalars(stmt.order_by(AppointmentRow.start, AppointmentRow.id))
        return list(rows)

    async def count_active_between(self, specialist_id: str, start: datetime, end: datetime) -> int:
        count = await self.session.scalar(
            select(func.count())
            .select_from(AppointmentRow)
            .where(
                AppointmentRow.specialist_id == specialist_id,
                AppointmentRow.status.in_(ACTIVE_STATUSES),
                _overlapping(start, end),
            )
        )
        return int(count or 0)

    async def transition(
        self,
        appt: AppointmentRow,
        to: Status,
        *,
        actor: str,
        at: datetime,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Move `appt` to `to` if the lifecycle allows it; raises InvalidTransition otherwise."""
        current = Status(appt.status)
        check_transition(current, to)
        # Compare-and-set on the stored status: a concurrent change (expiry job, another
        # replica) since `appt` was read makes this fail instead of silently overwriting it.
        result = await self.session.execute(
            update(AppointmentRow)
            .where(AppointmentRow.id == appt.id, AppointmentRow.status == current)
            .values(status=to, sequence=AppointmentRow.sequence + 1, updated_at=at)
            .returning(AppointmentRow.sequence)
            .execution_options(synchronize_session=False)
        )
        sequence = result.scalar_one_or_none()
        if sequence is None:
            stored = await self.session.scalar(select(AppointmentRow.status).where(AppointmentRow.id == appt.id))
            raise InvalidTransition(Status(stored) if stored is not None else current, to)
        set_committed_value(appt, "status", to)
        set_committed_value(appt, "sequence", sequence)
        set_committed_value(appt, "updated_at", at)
        self.session.add(
            TransitionRow(
                appointment_id=appt.id,
                from_status=current,
                to_status=to,
                actor=actor,
                reason=reason,
                at=at,
                details=details,
            )
        )
        await self.session.flush()
        # Every status change of a partner's booking reaches the partner: recorded here, where all of them pass.
        await self.partners.record_change(appt, at, reason=reason)

    async def move(
        self,
        appt: AppointmentRow,
        start: datetime,
        end: datetime,
        *,
        actor: str,
        at: datetime,
        specialist_id: str | None = None,
        channel: str | None = None,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> bool:
        """Give the appointment a new time (same identity, SEQUENCE+1), recorded like a transition.

        With `specialist_id`, it also goes to that specialist (the caller queues the removal from
        the old calendar); with `channel`, it takes place that way. Reminders already sent are
        forgotten: they follow the new time. `reason` and `details` go into the history row (the
        old and new times are always there).
        Compare-and-set on the old time and specialist: False if someone moved it meanwhile.
        """
        old_start, old_specialist = appt.start, appt.specialist_id
        specialist_id = specialist_id or old_specialist
        channel = channel or appt.channel
        result = await self.session.execute(
            update(AppointmentRow)
            .where(
                AppointmentRow.id == appt.id,
                AppointmentRow.start == old_start,
                AppointmentRow.specialist_id == old_specialist,
            )
            .values(
                start=start,
                end=end,
                specialist_id=specialist_id,
                channel=channel,
                sequence=AppointmentRow.sequence + 1,
                updated_at=at,
            )
            .returning(AppointmentRow.sequence)
            .execution_options(synchronize_session=False)
        )
        sequence = result.scalar_one_or_none()
        if sequence is None:
            return False
        changed = (
            ("start", start),
            ("end", end),
            ("specialist_id", specialist_id),
            ("channel", channel),
            ("sequence", sequence),
        )
        for name, value in (*changed, ("updated_at", at)):
            set_committed_value(appt, name, value)
        await self.session.execute(
            delete(ReminderRow)
            .where(ReminderRow.appointment_id == appt.id)
            .execution_options(synchronize_session=False)
        )
        status = Status(appt.status)
        if reason is None:
            reason = f"moved from {old_start.isoformat()}"
            if specialist_id != old_specialist:
                reason += f" and from {old_specialist}"
        what: dict[str, Any] = {"old_start": old_start.isoformat(), "new_start": start.isoformat()}
        if specialist_id != old_specialist:
            what |= {"reassigned_from": old_specialist, "reassigned_to": specialist_id}
        what |= details or {}
        self.session.add(
            TransitionRow(
                appointment_id=appt.id,
                from_status=status,
                to_status=status,
                actor=actor,
                reason=reason,
                at=at,
                details=what,
            )
        )
        await self.session.flush()
        await self.partners.record_change(appt, at, moved=True)
        return True

    async def mark_cancelled_late(self, appt: AppointmentRow) -> None:
        """Record that the client cancelled after the free-cancellation limit."""
        await self.session.execute(
            update(AppointmentRow)
            .where(AppointmentRow.id == appt.id)
            .values(cancelled_late=True)
            .execution_options(synchronize_session=False)
        )
        set_committed_value(appt, "cancelled_late", True)

    async def transitions(self, appointment_id: int) -> list[TransitionRow]:
        rows = await self.session.scalars(
            select(TransitionRow)
            .where(TransitionRow.appointment_id == appointment_id)
            .order_by(TransitionRow.at, TransitionRow.id)
        )
        return list(rows)

    async def due_expiries(self, now: datetime) -> list[AppointmentRow]:
        """Requests and proposals whose expiry time has come."""
        rows = await self.session.scalars(
            select(AppointmentRow)
            .where(AppointmentRow.status.in_(PENDING_STATUSES), AppointmentRow.expires_at <= now)
            .order_by(AppointmentRow.expires_at, AppointmentRow.id)
        )
        return list(rows)

    async def due_reminders(
        self, now: datetime, minutes_before: Sequence[int]
    ) -> list[tuple[AppointmentRow, list[int]]]:
        """Confirmed upcoming appointments with a reminder due: the due leads, nearest (the one to send) first."""
        if not minutes_before:
            return []
        widest = timedelta(minutes=max(minutes_before))
        rows = await self.session.scalars(
            select(AppointmentRow)
            .where(
                AppointmentRow.status == Status.CONFIRMED,
                AppointmentRow.start > now,
                AppointmentRow.start <= now + widest,
            )
            .order_by(AppointmentRow.start, AppointmentRow.id)
        )
        appts = list(rows)
        sent = await self.session.execute(
            select(ReminderRow.appointment_id, ReminderRow.minutes_before).where(
                ReminderRow.appointment_id.in_([a.id for a in appts])
            )
        )
        done = {(row[0], row[1]) for row in sent}
        due: list[tuple[AppointmentRow, list[int]]] = []
        for appt in appts:
            # After downtime several leads may be due at once: only the nearest one is worth sending.
            leads = [m for m in sorted(minutes_before) if appt.start - timedelta(minutes=m) <= now]
            if leads and (appt.id, leads[0]) not in done:
                due.append((appt, leads))
        return due

    async def mark_reminded(
        self, appointment_id: int, minutes: int, at: datetime, *, earlier: Sequence[int] = ()
    ) -> bool:
        """Record the reminder `minutes` before (and the `earlier`, longer leads it replaces) as sent.

        False if another process recorded it first: then it must not be sent twice.
        """
        claimed = False
        for i, lead in enumerate([minutes, *earlier]):
            stmt = (
                self._insert(ReminderRow)
                .values(appointment_id=appointment_id, minutes_before=lead, sent_at=at)
                .on_conflict_do_nothing()
            )
            result = await self.session.execute(stmt)
            if i == 0:
                claimed = result.rowcount == 1
        return claimed

    async def unsent_requests(self, created_before: datetime) -> list[AppointmentRow]:
        """Requested appointments whose Approve/Decline message was never recorded as sent."""
        rows = await self.session.scalars(
            select(AppointmentRow)
            .where(
                AppointmentRow.status == Status.REQUESTED,
                AppointmentRow.request_message_id.is_(None),
                AppointmentRow.created_at <= created_before,
            )
            .order_by(AppointmentRow.created_at, AppointmentRow.id)
        )
        return list(rows)

    async def set_request_message(self, appt_id: int, chat_id: int, message_id: int) -> None:
        """Remember the specialist's Approve/Decline message so it can be edited later."""
        await self.session.execute(
            update(AppointmentRow)
            .where(AppointmentRow.id == appt_id)
            .values(request_chat_id=chat_id, request_message_id=message_id)
            .execution_options(synchronize_session="fetch")
        )

    # drafts

    async def get_draft(self, chat_id: int) -> Any:
        """The chat's dialog state as a plain row (data, message_id, updated_at), or None."""
        return await _get_draft(self.session, chat_id)

    async def save_draft(
        self, chat_id: int, data: dict[str, Any], message_id: int | None, at: datetime | None = None
    ) -> None:
        """Insert or replace the chat's dialog state."""
        await _save_draft(self.session, chat_id, data, message_id, at)

    async def delete_draft(self, chat_id: int) -> None:
        await self.session.execute(_DELETE_DRAFT, {"chat": chat_id})

    # outbox

    async def enqueue_sync(self, appointment_id: int, specialist_id: str, at: datetime, *, alone: bool = False) -> None:
        """Ask for the appointment to be written to the calendar at `at` (or now, if earlier pending).

        `alone`: the caller knows it is neither a series' visit nor a group's seat (its own calendar resource).
        """
        # All occurrences of a series (all seats of a session) share one calendar resource: one queue for it,
        # so its writes stay in order.
        for anchor in [appointment_id] if alone else await self.calendar_anchors(appointment_id):
            await self._enqueue_one(anchor, specialist_id, at)

    async def _enqueue_one(self, appointment_id: int, specialist_id: str, at: datetime) -> None:
        # Coalesce only into a row no worker has claimed: a claimed row may already have read the
        # appointment, and marking it done would lose this newer change. A lease that looks run
        # out by `at` proves nothing (the worker may still be writing, or the clock jumped): only
        # a released row (locked_until NULL, set back on success or failure) takes the change.
        pending = await self.session.scalar(
            select(OutboxRow.id)
            .where(
                OutboxRow.appointment_id == appointment_id,
                # A row per calendar: a reassigned appointment is removed from one and put in another.
                OutboxRow.specialist_id == specialist_id,
                OutboxRow.done_at.is_(None),
                OutboxRow.locked_until.is_(None),
            )
            .order_by(OutboxRow.id)
            .limit(1)
        )
        if pending is not None:
            result = await self.session.execute(
                update(OutboxRow)
                .where(
                    OutboxRow.id == pending,
                    OutboxRow.done_at.is_(None),
                    OutboxRow.locked_until.is_(None),
                )
                .values(next_attempt_at=at)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount == 1:
                return
        self.session.add(
            OutboxRow(
                appointment_id=appointment_id,
                specialist_id=specialist_id,
                created_at=at,
                attempts=0,
                next_attempt_at=at,
            )
        )
        await self.session.flush()

    async def claim_due(
        self, now: datetime, *, limit: int = 20, lease: timedelta = timedelta(seconds=60)
    ) -> list[OutboxRow]:
        """Lease due rows to this worker; a row leased by another worker is never returned."""
        return await claim_queue(self.session, OutboxRow, now, limit=limit, lease=lease)

    async def outbox_done(self, row_id: int, at: datetime) -> None:
        await queue_done(self.session, OutboxRow, row_id, at)

    async def outbox_failed(self, row_id: int, at: datetime, error: str) -> datetime:
        """Record a failed attempt and schedule the next one; returns when that will be."""
        return await queue_failed(self.session, OutboxRow, row_id, at, error)

    async def outbox_retry_now(self, specialist_id: str, at: datetime) -> int:
        """Make every waiting write of one specialist due at `at`; returns how many."""
        result = await self.session.execute(
            update(OutboxRow)
            .where(
                OutboxRow.specialist_id == specialist_id,
                OutboxRow.done_at.is_(None),
                OutboxRow.locked_until.is_(None),
                OutboxRow.next_attempt_at > at,
            )
            .values(next_attempt_at=at)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount

    async def outbox_backlog(self) -> dict[str, tuple[int, int]]:
        """Per specialist: calendar writes still pending, and the most attempts any of them has made."""
        rows = await self.session.execute(
            select(OutboxRow.specialist_id, func.count(), func.max(OutboxRow.attempts))
            .where(OutboxRow.done_at.is_(None))
            .group_by(OutboxRow.specialist_id)
        )
        return {spec_id: (int(count), int(attempts or 0)) for spec_id, count, attempts in rows}

    async def outbox_pending(self, appointment_id: int | None = None) -> list[OutboxRow]:
        stmt = select(OutboxRow).where(OutboxRow.done_at.is_(None))
        if appointment_id is not None:
            stmt = stmt.where(OutboxRow.appointment_id == appointment_id)
        rows = await self.session.scalars(
            stmt.order_by(OutboxRow.next_attempt_at, OutboxRow.id).execution_options(populate_existing=True)
        )
        return list(rows)


class Store:
    """Opens short transactions on one engine."""

    def __init__(self, engine: AsyncEngine):
        self.engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        # On a SQLite file the hot path keeps connections of its own: taking one from the pool and giving it
        # back cost more than the statements run on it.
        self._open_driver = sqlite_opener(engine)
        self._drivers: list[prepared.DriverStatements] = []
        if self._open_driver is not None:
            event.listen(engine.sync_engine, "engine_disposed", self._close_drivers)

    @asynccontextmanager
    async def tx(self) -> AsyncIterator[Tx]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        async with self._sessions() as session, session.begin():
            yield Tx(session)

    @asynccontextmanager
    async def quick(self) -> AsyncIterator[QuickTx]:
        """A transaction for the statements every update runs (its client, its draft), without an ORM session."""
        if self._open_driver is None:
            async with self.engine.connect() as conn:
                run = await prepared.statements(conn)
                async with run.transaction():
                    yield QuickTx(run)
            return
        driver = self._drivers.pop() if self._drivers else await self._new_driver(self._open_driver)
        try:
            async with driver.transaction():
                yield QuickTx(driver)
        finally:
            if driver.driver.in_transaction or len(self._drivers) >= _KEEP_DRIVERS:
                await driver.driver.close()  # a transaction left open (its rollback failed) is never reused
            else:
                self._drivers.append(driver)

    async def _new_driver(self, open_driver: Callable[[], Awaitable[Any]]) -> prepared.DriverStatements:
        return prepared.DriverStatements(await open_driver(), self.engine.dialect)

    def _close_drivers(self, _engine: Any) -> None:
        """Close the kept connections with the engine (AsyncEngine.dispose runs this where it may await)."""
        while self._drivers:
            await_(self._drivers.pop().driver.close())


# The hot path's statements, compiled once per dialect (scheduling.prepared).
_HOT_CLIENT = Hot(_CLIENT_BY_TELEGRAM, _CLIENTS.columns)
_HOT_DRAFT = Hot(_GET_DRAFT, _GET_DRAFT.selected_columns)
_HOT_DRAFT_MESSAGE = Hot(_DRAFT_MESSAGE)
_HOT_DELETE_DRAFT = Hot(_DELETE_DRAFT)


@functools.cache
def _hot_save(dialect_name: str) -> Hot:
    """The draft's upsert for the hot path, per dialect."""
    return Hot(_draft_upsert(dialect_name))


_OWN_TIMES = (
    select(
        AppointmentRow.specialist_id,
        AppointmentRow.uid,
        AppointmentRow.status,
        AppointmentRow.start,
        AppointmentRow.end,
        AppointmentRow.service_id,
        AppointmentRow.location_id,
        AppointmentRow.group_id,
        GroupRow.uid.label("group_uid"),
    )
    .outerjoin(GroupRow, GroupRow.id == AppointmentRow.group_id)
    .where(AppointmentRow.specialist_id == bindparam("specialist"), _IN_RANGE)
)
_HOT_OWN_TIMES = Hot(_OWN_TIMES, _OWN_TIMES.selected_columns)

_LAST_SPECIALIST = (
    select(AppointmentRow.specialist_id)
    .where(
        AppointmentRow.client_id == bindparam("client"),
        AppointmentRow.status.in_(IN_CALENDAR),
    )
    .order_by(AppointmentRow.start.desc(), AppointmentRow.id.desc())
    .limit(1)
)
_HOT_LAST_SPECIALIST = Hot(_LAST_SPECIALIST, _LAST_SPECIALIST.selected_columns)
_HOT_CONSENTS = Hot(CONSENTS_IN_FORCE, CONSENTS_IN_FORCE.selected_columns)


@functools.cache
def _first_contact(dialect_name: str) -> Hot:
    """The first contact's upsert; built once per dialect, when first used."""
    stmt = dialect_insert(dialect_name, _CLIENTS).values(
        telegram_id=bindparam("telegram_id"),
        created_at=bindparam("now"),
        updated_at=bindparam("now"),
        language=bindparam("language"),
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[_CLIENTS.c.telegram_id],
        set_={"language": bindparam("language"), "updated_at": bindparam("now")},
    ).returning(*_CLIENTS.columns)  # the row as written: no second query to read it back
    return Hot(stmt, _CLIENTS.columns)


class QuickTx:
    """One open transaction on a bare connection: the client and draft queries of the dialog's hot path.

    An ORM session per update (and an ORM load of the client) cost more than the queries themselves; on SQLite
    the statements skip SQLAlchemy's execution altogether (scheduling.prepared).
    """

    _mapped = False

    def __init__(self, run: prepared.CoreStatements | prepared.DriverStatements):
        self._run = run

    async def client_by_telegram(self, telegram_id: int) -> ClientRow | None:
        """The client as a detached ClientRow, as Tx.client_by_telegram gives it once its transaction ends."""
        row = await self._run.first(_HOT_CLIENT, {"telegram_id": telegram_id})
        return None if row is None else self._detached(row)

    @staticmethod
    def _detached(row: Any) -> ClientRow:
        """A clients row (all columns, in table order) as a detached ClientRow."""
        if not QuickTx._mapped:
            configure_mappers()  # the attributes get their loaders here (not free even when done: once is enough)
            QuickTx._mapped = True
        client = ClientRow.__mapper__.class_manager.new_instance()
        for key, value in zip(_CLIENT_COLUMNS, row, strict=True):
            set_committed_value(client, key, value)
        make_transient_to_detached(client)
        return client

    async def first_contact(self, telegram_id: int, language: str, at: datetime | None = None) -> ClientRow:
        """Create the client in their language (as Tx.upsert_client does), atomic against a concurrent one."""
        values = {"telegram_id": telegram_id, "language": language, "now": at or datetime.now(UTC)}
        row = await self._run.first(_first_contact(self._run.dialect.name), values)
        assert row is not None  # an upsert with RETURNING always answers its row
        return self._detached(row)

    async def get_draft(self, chat_id: int) -> Any:
        """As Tx.get_draft."""
        return await self._run.first(_HOT_DRAFT, {"chat": chat_id})

    async def consents_in_force(self, client_id: int, policy_version: str) -> set[str]:
        """As Tx.consents_in_force."""
        rows = await self._run.all(_HOT_CONSENTS, {"client": client_id, "version": policy_version})
        return {kind for (kind,) in rows}

    async def last_specialist(self, client_id: int) -> str | None:
        """As Tx.last_specialist."""
        row = await self._run.first(_HOT_LAST_SPECIALIST, {"client": client_id})
        return None if row is None else row.specialist_id

    async def own_times(self, specialist_ids: Sequence[str], start: datetime, end: datetime) -> list[Any]:
        """(specialist_id, uid, status, start, end, service_id, location_id, group_id, group_uid) of all our
        appointments overlapping the range: plain rows, read on every screen of the slot views."""
        rows: list[Any] = []
        for specialist in specialist_ids:
            rows += await self._run.all(_HOT_OWN_TIMES, {"specialist": specialist, "start": start, "end": end})
        return rows

    async def save_draft(
        self, chat_id: int, data: dict[str, Any], message_id: int | None, at: datetime | None = None
    ) -> None:
        """As Tx.save_draft."""
        values = {"chat_id": chat_id, "data": data, "message_id": message_id, "updated_at": at or datetime.now(UTC)}
        await self._run.run(_hot_save(self._run.dialect.name), values)

    async def draft_message(self, chat_id: int, message_id: int, at: datetime | None = None) -> None:
        """Point the saved draft at the message its buttons are on, without writing the draft again."""
        values = {"chat": chat_id, "message_id": message_id, "at": at or datetime.now(UTC)}
        await self._run.run(_HOT_DRAFT_MESSAGE, values)

    async def delete_draft(self, chat_id: int) -> None:
        """As Tx.delete_draft."""
        await self._run.run(_HOT_DELETE_DRAFT, {"chat": chat_id})
