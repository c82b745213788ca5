"""A chat's dialog state, kept in the database so restarts and other replicas continue it."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from scheduling.store import QuickTx, Store, Tx


@dataclass
class Draft:
    """Everything a booking dialog has chosen so far, plus where it stands."""

    lang: str = "en"
    step: str = "location"
    history: list[str] = field(default_factory=list)
    location: str | None = None
    category: int | None = None
    service: str | None = None
    specialist: str | None = None  # a specialist id, or "*" for the first available
    month: str | None = None  # "2026-12": the month the day picker shows
    day: str | None = None  # ISO local date
    part: str | None = None  # time-of-day filter: "m", "a", "e"
    start: str | None = None  # ISO UTC start of the chosen slot
    assigned: str | None = None  # the specialist the slot belongs to
    channels: list[str] = field(default_factory=list)
    channel: str | None = None
    note: str | None = None
    contact_stage: str | None = None  # "name", "phone" or "email" while asking
    # Contact details typed before the client agreed to the privacy policy: kept only here (gone with the
    # draft if they cancel), written to their record once they agree.
    pending: dict[str, str] = field(default_factory=dict)
    source: str | None = None
    notice: str | None = None  # a one-off notice shown above the next screen
    reason_for: int | None = None  # a specialist typing a decline reason for this appointment
    message_for: int | None = None  # typing a message to the other party of this appointment
    message_staff: bool = False  # ... as its specialist (or an admin), not as its client
    active: bool = False  # a booking dialog is under way
    reply_keyboard: bool = False  # the "share my number" keyboard is showing and must be removed
    moving: int | None = None  # the appointment this dialog asks to move (None: a new booking)
    moving_from: str | None = None  # ISO UTC start of that appointment, shown while choosing
    repeat: int | None = None  # the client asks for this many weekly visits at the same time (None: one visit)
    skip: list[str] | None = None  # ISO UTC starts of those weekly dates that are taken and will be left out
    avoid: list[str] = field(default_factory=list)  # specialists "first available" must not pick (they declined)
    work: dict[str, Any] = field(default_factory=dict)  # a staff member's workspace dialog (bot.dialogs.work)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Draft:
        return cls(**{k: v for k, v in data.items() if k in _NAMES})

    def to_dict(self) -> dict[str, Any]:
        """The fields as a dict that shares their lists and dicts (not asdict's deep copy): it is saved at once."""
        return {name: getattr(self, name) for name in _NAMES}


_NAMES = tuple(f.name for f in fields(Draft))


async def load(store: Store, chat_id: int) -> tuple[Draft | None, int | None]:
    """The chat's draft and the message the dialog edits, if any."""
    async with store.quick() as tx:
        return await read(tx, chat_id)


async def read(tx: Tx | QuickTx, chat_id: int) -> tuple[Draft | None, int | None]:
    """As load(), inside a transaction the caller has open."""
    row = await tx.get_draft(chat_id)
    if row is None:
        return None, None
    return Draft.from_dict(row.data if isinstance(row.data, dict) else {}), row.message_id


async def save(store: Store, chat_id: int, draft: Draft, message_id: int | None) -> None:
    async with store.quick() as tx:
        await tx.save_draft(chat_id, draft.to_dict(), message_id)


async def point_at(store: Store, chat_id: int, message_id: int) -> None:
    """The draft just saved is now on this message: only the message id is written, not the draft again."""
    async with store.quick() as tx:
        await tx.draft_message(chat_id, message_id)
