"""Client records: created by staff, found by name or phone, and linked to the client's own Telegram record."""

from __future__ import annotations

from dataclasses import dataclass, field

from scheduling.booking import BookingService
from scheduling.contact import clean_email, clean_name, normalize_phone
from scheduling.staff import NotAllowed, Staff, require_staff
from scheduling.store import ClientRow


class InvalidContact(Exception):
    """A name, phone number or e-mail address that cannot be used; `field` says which."""

    def __init__(self, field: str):
        super().__init__(field)
        self.field = field


@dataclass(frozen=True)
class Linking:
    """What happened when a client who uses the bot gave their contact details."""

    linked: ClientRow | None = None  # the practice's record, now merged into the client's own
    ambiguous: list[ClientRow] = field(default_factory=list)  # several records match: admins decide


def _same_name(a: str | None, b: str | None) -> bool:
    """First and last name equal, ignoring case and spacing."""
    return bool(a and b) and " ".join(a.casefold().split()) == " ".join(b.casefold().split())  # type: ignore[union-attr]


def matches(record: ClientRow, client: ClientRow) -> bool:
    """The seeds' rule: the same first and last name, plus the same phone number or the same e-mail."""
    if not _same_name(record.name, client.name):
        return False
    same_phone = bool(record.phone and client.phone and record.phone == client.phone)
    same_email = bool(record.email and client.email and record.email.casefold() == client.email.casefold())
    return same_phone or same_email


class ClientRecords:
    """Creating, finding and linking client records."""

    def __init__(self, booking: BookingService):
        self.booking = booking

    async def create(self, telegram_id: int, name: str, phone: str, email: str | None = None) -> ClientRow:
        """A record entered by staff for a client who may not use Telegram; raises InvalidContact."""
        staff = require_staff(self.booking.practice, telegram_id)
        clean = clean_name(name)
        if clean is None:
            raise InvalidContact("name")
        number = normalize_phone(phone, self.booking.practice.practice.country)
        if number is None:
            raise InvalidContact("phone")
        address = None
        if email:
            address = clean_email(email)
            if address is None:
                raise InvalidContact("email")
        async with self.booking.store.tx() as tx:
            return await tx.add_client_record(
                name=clean, phone=number, email=address, created_by=staff.actor, at=self.booking.clock()
            )

    async def search(self, telegram_id: int, text: str) -> list[ClientRow]:
        """Clients by part of their name or phone number (staff book for any client of the practice)."""
        require_staff(self.booking.practice, telegram_id)
        text = " ".join(text.split())[:100]
        if len(text) < 2:
            return []
        async with self.booking.store.tx() as tx:
            return await tx.find_clients(text)

    async def search_visible(self, telegram_id: int, text: str) -> list[ClientRow]:
        """search(), keeping only the clients whose card() this staff member may open."""
        visible: list[ClientRow] = []
        for client in await self.search(telegram_id, text):
            try:
                await self.card(telegram_id, client.id)
            except NotAllowed:
                continue
            visible.append(client)
        return visible

    async def card(self, telegram_id: int, client_id: int) -> tuple[ClientRow, Staff]:
        """A client this staff member may see: an admin any; a specialist those they see or entered."""
        staff = require_staff(self.booking.practice, telegram_id)
        async with self.booking.store.tx() as tx:
            client = await tx.get_client(client_id)
            if client is None or client.name is None:
                raise NotAllowed(client_id)
            if staff.admin or client.created_by == staff.actor:
                return client, staff
            if not await tx.has_seen_client(client_id, staff.specialist_ids):
                raise NotAllowed(client_id)
        return client, staff

    async def link(self, client_id: int) -> Linking:
        """After a bot user gave name and phone (or e-mail): merge the one staff record that matches.

        Two or more matching records are never merged automatically: a twin must not inherit a
        sibling's history. The caller asks the admins.
        """
        async with self.booking.store.tx() as tx:
            client = await tx.get_client(client_id)
            if client is None or client.telegram_id is None:
                return Linking()
            found = [r for r in await tx.unlinked_records() if r.id != client.id and matches(r, client)]
            if len(found) != 1:
                return Linking(ambiguous=found if len(found) > 1 else [])
            await tx.merge_client(found[0], client, self.booking.clock())
        return Linking(linked=found[0])

    async def link_chosen(self, telegram_id: int, client_id: int, record_id: int) -> ClientRow:
        """An admin links a bot user to one of the records that matched; raises NotAllowed otherwise."""
        staff = require_staff(self.booking.practice, telegram_id)
        if not staff.admin:
            raise NotAllowed(telegram_id)
        async with self.booking.store.tx() as tx:
            client = await tx.get_client(client_id)
            record = await tx.get_client(record_id)
            if client is None or record is None or record.telegram_id is not None or not matches(record, client):
                raise NotAllowed(record_id)
            await tx.merge_client(record, client, self.booking.clock())
        return record
