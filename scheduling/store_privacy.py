"""Queries behind the privacy rules: feed tokens, consents, exports, erasure and old drafts."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import bindparam, delete, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from scheduling.db import (
    AppointmentRow,
    ClientRow,
    ConsentRow,
    DraftRow,
    EmailRow,
    FeedTokenRow,
    MessageRow,
    PartnerClientRow,
    SeriesRow,
    StaffNoteRow,
    TransitionRow,
    WaitingRow,
)
from scheduling.model import ACTIVE_STATUSES

# The two consents a client gives, recorded separately with the policy version.
TERMS = "terms"  # the terms of service and the privacy policy
HEALTH = "health"  # the processing of health information in the client's notes


# The consents in force, read on the dialog's hot path too (scheduling.store.QuickTx).
CONSENTS_IN_FORCE = (
    select(ConsentRow.kind)
    .where(
        ConsentRow.client_id == bindparam("client"),
        ConsentRow.policy_version == bindparam("version"),
        ConsentRow.withdrawn_at.is_(None),
    )
    .distinct()
)


class PrivacyQueries:
    """Mixed into the store's transaction class; `session` is the open transaction's session."""

    session: AsyncSession

    # consents

    async def has_consent(self, client_id: int, policy_version: str, kind: str = TERMS) -> bool:
        """Whether the client gave this consent to this version of the policy and has not withdrawn it."""
        return kind in await self.consents_in_force(client_id, policy_version)

    async def consents_in_force(self, client_id: int, policy_version: str) -> set[str]:
        """The kinds of consent the client gave to this version of the policy and has not withdrawn."""
        rows = await self.session.scalars(CONSENTS_IN_FORCE, {"client": client_id, "version": policy_version})
        return set(rows)

    async def record_consent(self, client_id: int, policy_version: str, at: datetime, kind: str = TERMS) -> None:
        self.session.add(ConsentRow(client_id=client_id, policy_version=policy_version, kind=kind, accepted_at=at))
        await self.session.flush()

    async def withdraw_consents(self, client_id: int, at: datetime) -> int:
        """Withdraw every consent the client gave; returns how many there were."""
        result = await self.session.execute(
            update(ConsentRow)
            .where(ConsentRow.client_id == client_id, ConsentRow.withdrawn_at.is_(None))
            .values(withdrawn_at=at)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0)

    async def consents(self, client_id: int) -> list[ConsentRow]:
        rows = await self.session.scalars(
            select(ConsentRow).where(ConsentRow.client_id == client_id).order_by(ConsentRow.accepted_at, ConsentRow.id)
        )
        return list(rows)

    # what is kept about one client (the export), and its erasure

    async def client_messages(self, client_id: int) -> list[MessageRow]:
        """Messages between the client and the practice still stored (they are deleted once delivered)."""
        rows = await self.session.scalars(
            select(MessageRow)
            .join(AppointmentRow, AppointmentRow.id == MessageRow.appointment_id)
            .where(AppointmentRow.client_id == client_id)
            .order_by(MessageRow.id)
        )
        return list(rows)

    async def client_emails(self, client_id: int) -> list[EmailRow]:
        """E-mails to the client waiting to be sent."""
        rows = await self.session.scalars(select(EmailRow).where(EmailRow.client_id == client_id).order_by(EmailRow.id))
        return list(rows)

    async def client_waiting(self, client_id: int) -> list[WaitingRow]:
        """Every waiting-list entry of the client, open or closed."""
        rows = await self.session.scalars(
            select(WaitingRow).where(WaitingRow.client_id == client_id).order_by(WaitingRow.id)
        )
        return list(rows)

    async def client_partner_refs(self, client_id: int) -> list[PartnerClientRow]:
        rows = await self.session.scalars(
            select(PartnerClientRow).where(PartnerClientRow.client_id == client_id).order_by(PartnerClientRow.id)
        )
        return list(rows)

    async def history_of(self, appointment_ids: Sequence[int]) -> list[TransitionRow]:
        rows = await self.session.scalars(
            select(TransitionRow)
            .where(TransitionRow.appointment_id.in_(appointment_ids))
            .order_by(TransitionRow.at, TransitionRow.id)
        )
        return list(rows)

    async def count_staff_notes(self, client_id: int) -> int:
        count = await self.session.scalar(
            select(func.count()).select_from(StaffNoteRow).where(StaffNoteRow.client_id == client_id)
        )
        return int(count or 0)

    async def erase_client(self, client: ClientRow, at: datetime) -> None:
        """Remove every personal field of the client and what hangs off them; the anonymous row and history stay.

        Notes (theirs and the staff's about them), messages, queued e-mails, waiting-list entries, partners'
        references to them and the dialog go; the client row loses name, phone, e-mail, language and its
        Telegram link. Partner bookings keep their reference for the partner's settlement.
        """
        appointments = select(AppointmentRow.id).where(AppointmentRow.client_id == client.id)
        quiet = {"synchronize_session": False}
        await self.session.execute(
            delete(MessageRow).where(MessageRow.appointment_id.in_(appointments)).execution_options(**quiet)
        )
        # A partner's reference no longer leads here: their returning client becomes a new client, never this row.
        for table in (EmailRow, WaitingRow, StaffNoteRow, PartnerClientRow):
            await self.session.execute(delete(table).where(table.client_id == client.id).execution_options(**quiet))
        await self.session.execute(
            update(AppointmentRow)
            .where(AppointmentRow.client_id == client.id)
            .values(note=None)
            .execution_options(**quiet)
        )
        await self.session.execute(
            update(SeriesRow).where(SeriesRow.client_id == client.id).values(note=None).execution_options(**quiet)
        )
        if client.telegram_id is not None:
            await self.session.execute(
                delete(DraftRow).where(DraftRow.chat_id == client.telegram_id).execution_options(**quiet)
            )
        await self.withdraw_consents(client.id, at)
        for name in ("name", "phone", "email", "language", "telegram_id"):
            setattr(client, name, None)
        client.erased_at = at
        client.updated_at = at
        await self.session.flush()

    async def drop_client_notes(self, client_id: int) -> list[int]:
        """Delete the client's own notes (health information) from their appointments and series; the ids changed."""
        ids = list(
            await self.session.scalars(
                select(AppointmentRow.id).where(AppointmentRow.client_id == client_id, AppointmentRow.note.is_not(None))
            )
        )
        quiet = {"synchronize_session": False}
        await self.session.execute(
            update(AppointmentRow)
            .where(AppointmentRow.client_id == client_id)
            .values(note=None)
            .execution_options(**quiet)
        )
        await self.session.execute(
            update(SeriesRow).where(SeriesRow.client_id == client_id).values(note=None).execution_options(**quiet)
        )
        return ids

    async def retention_due(self, cutoff: datetime, keep: Collection[int], limit: int = 50) -> list[ClientRow]:
        """Clients not erased whose last appointment ended (or, with none, who first came) before `cutoff`.

        Never those with an appointment still active or a waiting-list entry still open, nor the Telegram ids in
        `keep` (the practice's staff, whose rows only hold their language).
        """
        latest = (
            select(func.max(AppointmentRow.end))
            .where(AppointmentRow.client_id == ClientRow.id)
            .correlate(ClientRow)
            .scalar_subquery()
        )
        active = exists().where(
            AppointmentRow.client_id == ClientRow.id,
            AppointmentRow.status.in_(ACTIVE_STATUSES),
            AppointmentRow.end > cutoff,
        )
        waiting = exists().where(WaitingRow.client_id == ClientRow.id, WaitingRow.status.in_(("waiting", "offered")))
        stmt = (
            select(ClientRow)
            .where(
                ClientRow.erased_at.is_(None),
                func.coalesce(latest, ClientRow.created_at) < cutoff,
                ClientRow.updated_at < cutoff,
                ~active,
                ~waiting,
            )
            .order_by(ClientRow.id)
            .limit(limit)
        )
        if keep:
            stmt = stmt.where((ClientRow.telegram_id.is_(None)) | (ClientRow.telegram_id.not_in(list(keep))))
        return list(await self.session.scalars(stmt))

    # drafts

    async def delete_drafts_before(self, cutoff: datetime) -> int:
        """Forget dialogs nobody touched since `cutoff` (what a client typed into one included)."""
        result = await self.session.execute(
            delete(DraftRow).where(DraftRow.updated_at < cutoff).execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0)

    # feed tokens

    async def feed_generations(self) -> dict[str, int]:
        """How often each specialist's feed address was renewed (absent: never)."""
        rows = await self.session.execute(select(FeedTokenRow.specialist_id, FeedTokenRow.generation))
        return {spec_id: int(generation) for spec_id, generation in rows}

    async def feed_generation(self, specialist_id: str) -> int:
        found = await self.session.scalar(
            select(FeedTokenRow.generation).where(FeedTokenRow.specialist_id == specialist_id)
        )
        return int(found or 0)

    async def rotate_feed(self, specialist_id: str, at: datetime) -> int:
        """Renew the specialist's feed address (the old one stops working); returns the new generation."""
        row = await self.session.get(FeedTokenRow, specialist_id, with_for_update=True)
        if row is None:
            row = FeedTokenRow(specialist_id=specialist_id, generation=0, rotated_at=at)
            self.session.add(row)
        row.generation += 1
        row.rotated_at = at
        await self.session.flush()
        return row.generation
