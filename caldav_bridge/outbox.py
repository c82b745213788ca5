"""The outbox worker: writes appointments to calendars from durable rows, retrying until it works."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from scheduling.calendar import CalendarPort, CalendarUnavailable, EventSpec
from scheduling.model import IN_CALENDAR, Status
from scheduling.queue import Drainer

log = logging.getLogger(__name__)


def _error_text(exc: BaseException) -> str:
    """Short and free of personal data: the exception type and, for our own errors, their message."""
    if isinstance(exc, CalendarUnavailable):
        # Our messages name URLs and statuses only, never event texts.
        return f"CalendarUnavailable: {exc}"[:300]
    return type(exc).__name__


class OutboxWorker(Drainer):
    """Drains due outbox rows: put the event of an active appointment, remove it otherwise."""

    name = "outbox"

    def __init__(
        self,
        store: Any,
        calendar: CalendarPort,
        event_for: Callable[[Any], EventSpec],
        clock: Callable[[], datetime],
        *,
        batch: int = 20,
        series_event_for: Callable[[Any, list[Any]], EventSpec | None] | None = None,
        group_event_for: Callable[[Any, list[Any]], EventSpec | None] | None = None,
    ) -> None:
        super().__init__()
        self.store = store
        self.calendar = calendar
        self.event_for = event_for
        self.series_event_for = series_event_for
        self.group_event_for = group_event_for
        self.clock = clock
        self.batch = batch

    async def run_once(self) -> int:
        """Process the rows due now; returns how many were written successfully."""
        async with self.store.tx() as tx:
            rows = await tx.claim_due(self.clock(), limit=self.batch)
        by_specialist: dict[str, list[Any]] = {}
        for row in rows:
            by_specialist.setdefault(row.specialist_id, []).append(row)

        async def drain(queue: list[Any]) -> int:
            return sum([await self._process(row) for row in queue])

        # One specialist's rows in order; specialists side by side, so a slow server delays only its own.
        return sum(await asyncio.gather(*(drain(q) for q in by_specialist.values())))

    async def _process(self, row: Any) -> bool:
        series: Any = None
        group: Any = None
        async with self.store.tx() as tx:
            appt = await tx.get_appointment(row.appointment_id)
            # A seat (weekly seats of a series too) is written as part of its session's event.
            if appt is not None and appt.group_id is not None:
                group = await tx.get_group(appt.group_id)
                seats = await tx.group_seats(appt.group_id)
            elif appt is not None and appt.series_id is not None:
                series = await tx.get_series(appt.series_id)
                occurrences = await tx.series_rows(appt.series_id)
        # The transaction is closed here: no HTTP call while the database is locked.
        error: BaseException | None = None
        written: str | None = None
        try:
            if appt is None:
                raise LookupError("appointment missing")
            if series is not None:
                # One resource for the whole series, written from all its rows as they are now.
                if self.series_event_for is None:
                    raise LookupError("no writer for series")
                spec = self.series_event_for(series, occurrences)
                if spec is None:
                    await self.calendar.remove(row.specialist_id, series.uid)
                else:
                    written = await self.calendar.put(row.specialist_id, spec)
            elif group is not None:
                # One event for the whole session, written from all its seats as they are now.
                if self.group_event_for is None:
                    raise LookupError("no writer for group sessions")
                spec = self.group_event_for(group, seats)
                if spec is None:
                    await self.calendar.remove(row.specialist_id, group.uid)
                else:
                    written = await self.calendar.put(row.specialist_id, spec)
            # A row for a specialist the appointment has left (reassigned) removes it from that calendar.
            elif Status(appt.status) in IN_CALENDAR and appt.specialist_id == row.specialist_id:
                written = await self.calendar.put(row.specialist_id, self.event_for(appt))
            else:
                await self.calendar.remove(row.specialist_id, appt.uid)
            own = series is None and group is None and appt.specialist_id == row.specialist_id
            if (
                own
                and appt.calendar_url
                and appt.calendar_url != (written or self.calendar.booking_calendar_url(row.specialist_id))
            ):
                # The booking calendar changed in the configuration: the copy in the old one goes.
                await self._remove_old(row.specialist_id, appt.uid, appt.calendar_url)
        except Exception as exc:
            error = exc
        async with self.store.tx() as tx:
            if error is None:
                assert appt is not None
                if series is not None:
                    # Every occurrence lives in the written resource: each is judged afresh from now.
                    await tx.record_writes([o.id for o in occurrences], written, self.clock())
                elif group is not None:
                    # Every seat lives in the session's event: each is judged afresh from now.
                    await tx.record_writes([s.id for s in seats], written, self.clock())
                elif appt.specialist_id == row.specialist_id:
                    await tx.record_writes([appt.id], written, self.clock())
                await tx.outbox_done(row.id, self.clock())
                return True
            next_at = await tx.outbox_failed(row.id, self.clock(), _error_text(error))
        log.warning(
            "calendar write for appointment %s failed (%s); next attempt at %s",
            row.appointment_id,
            type(error).__name__,
            next_at.isoformat(),
        )
        return False

    async def _remove_old(self, specialist_id: str, uid: str, calendar_url: str) -> None:
        """Best effort: the old calendar may be gone or elsewhere, and the new copy is what counts."""
        try:
            await self.calendar.remove(specialist_id, uid, calendar_url)
        except Exception as exc:
            log.info("could not remove an event from an earlier calendar of %s: %s", specialist_id, _error_text(exc))
