"""The running bot's collaborators, reachable from every handler through the Application."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from telegram.ext import Application, ContextTypes

from bot.mail import Mailer
from providers.connections import Connections
from scheduling.booking import BookingService
from scheduling.changes import ChangeService
from scheduling.clients import ClientRecords
from scheduling.config import Practice
from scheduling.locks import KeyLocks
from scheduling.partners import PartnerService
from scheduling.privacy import PrivacyService
from scheduling.series import SeriesService
from scheduling.staff_changes import StaffChanges
from scheduling.store import ClientRow, Store
from scheduling.visits import StaffBooking
from scheduling.waitlist import WaitingList


@dataclass
class Deps:
    practice: Practice
    store: Store
    booking: BookingService
    chats: KeyLocks = field(default_factory=KeyLocks)  # one chat's updates one at a time, across processes
    connections: Connections | None = None  # Google and Microsoft sign-ins
    mailer: Mailer | None = None  # e-mail to clients; None without SMTP settings

    @property
    def changes(self) -> ChangeService:
        """Moves the client asks for (stateless: made on demand)."""
        return ChangeService(self.booking)

    @cached_property
    def series(self) -> SeriesService:
        """Recurring visits, on the same store and calendar as single ones."""
        return SeriesService(self.booking)

    @cached_property
    def partners(self) -> PartnerService:
        """Partner bookings under each partner's rules, on the same booking service."""
        return PartnerService(self.practice, self.booking)

    @property
    def waitlist(self) -> WaitingList:
        """Clients waiting for an earlier time (stateless: made on demand)."""
        return WaitingList(self.booking)

    @cached_property
    def visits(self) -> StaffBooking:
        return StaffBooking(self.booking)

    @cached_property
    def staff_changes(self) -> StaffChanges:
        return StaffChanges(self.booking)

    @cached_property
    def privacy(self) -> PrivacyService:
        """The client's rights over their data: export, withdrawal of consent, erasure, retention."""
        return PrivacyService(self.booking)

    @cached_property
    def records(self) -> ClientRecords:
        return ClientRecords(self.booking)

    async def staff_language(self, telegram_id: int) -> str:
        """The language a staff member is written to in: their Telegram language, else the practice's."""
        async with self.store.tx() as tx:
            row = await tx.client_by_telegram(telegram_id)
        return self.language(row)

    def language(self, client: ClientRow | None) -> str:
        """The language a client is answered in: theirs, else the practice's."""
        return (client.language if client else None) or self.practice.practice.language


def deps(context: ContextTypes.DEFAULT_TYPE | Application) -> Deps:
    app = context if isinstance(context, Application) else context.application
    return app.bot_data["deps"]
