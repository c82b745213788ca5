"""E-mails to clients, queued in the database and retried until the SMTP server takes them."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, select, update

from scheduling.db import ClientRow, EmailRow
from scheduling.queue import ERROR_MAX_CHARS, retry_delay
from scheduling.store import Store

LEASE = timedelta(minutes=2)
GIVE_UP_AFTER = 30  # attempts (some hours of retries): then the e-mail is dropped, and the caller logs it


class MailQueue:
    """The client's e-mail address is read when sending, so a corrected address is used and none is copied."""

    def __init__(self, store: Store):
        self.store = store

    async def add(self, client_id: int, subject: str, body: str, ics: bytes | None, at: datetime) -> int:
        async with self.store.tx() as tx:
            row = EmailRow(
                client_id=client_id,
                subject=subject[:300],
                body=body,
                ics=ics.decode("utf-8") if ics is not None else None,
                created_at=at,
                attempts=0,
                next_attempt_at=at,
            )
            tx.session.add(row)
            await tx.session.flush()
            return row.id

    async def claim(self, now: datetime, limit: int = 20) -> list[tuple[EmailRow, str | None]]:
        """Lease due e-mails to this sender, each with the client's current address (None: they removed it)."""
        free = or_(EmailRow.locked_until.is_(None), EmailRow.locked_until <= now)
        async with self.store.tx() as tx:
            due = select(EmailRow.id).where(EmailRow.next_attempt_at <= now, free).limit(limit)
            ids = list(
                await tx.session.scalars(
                    update(EmailRow)
                    .where(EmailRow.id.in_(due.scalar_subquery()), free)
                    .values(locked_until=now + LEASE)
                    .returning(EmailRow.id)
                    .execution_options(synchronize_session=False)
                )
            )
            if not ids:
                return []
            rows = await tx.session.execute(
                select(EmailRow, ClientRow.email)
                .join(ClientRow, ClientRow.id == EmailRow.client_id)
                .where(EmailRow.id.in_(ids))
                .order_by(EmailRow.id)
            )
            return [(row, email) for row, email in rows]

    async def done(self, email_id: int) -> None:
        async with self.store.tx() as tx:
            await tx.session.execute(delete(EmailRow).where(EmailRow.id == email_id))

    async def failed(self, email_id: int, now: datetime, error: str) -> bool:
        """Schedule another attempt; False when the e-mail was given up (and deleted)."""
        async with self.store.tx() as tx:
            attempts = await tx.session.scalar(
                update(EmailRow)
                .where(EmailRow.id == email_id)
                .values(attempts=EmailRow.attempts + 1)
                .returning(EmailRow.attempts)
            )
            if attempts is None:
                return False
            if attempts >= GIVE_UP_AFTER:
                await tx.session.execute(delete(EmailRow).where(EmailRow.id == email_id))
                return False
            await tx.session.execute(
                update(EmailRow)
                .where(EmailRow.id == email_id)
                .values(
                    next_attempt_at=now + retry_delay(attempts), locked_until=None, last_error=error[:ERROR_MAX_CHARS]
                )
            )
            return True

    async def pending(self) -> int:
        async with self.store.tx() as tx:
            return int(await tx.session.scalar(select(func.count()).select_from(EmailRow)) or 0)
