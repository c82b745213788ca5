"""A staff member's workspace dialog state (/new, moving, cancelling, typing a note), kept in the chat's draft."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from bot.dialogs import draft as drafts
from bot.dialogs.draft import Draft
from scheduling.store import Store


@dataclass
class Work:
    """What a staff member has chosen so far in one workspace dialog, and where it stands."""

    flow: str = ""  # "new", "move", "cancel", "note", "find"
    step: str = ""  # the screen shown (see bot.dialogs.new_visit.FLOWS)
    history: list[str] = field(default_factory=list)  # the steps shown, for Back
    expect: str = ""  # what typed text means now: "query", "name", "phone", "email", "time", "reason", "note"
    message: int | None = None  # the message the dialog edits; taps on any other are stale
    appt: int | None = None  # the appointment being moved, cancelled or annotated
    client: int | None = None
    specialist: str | None = None
    service: str | None = None
    location: str | None = None
    channel: str | None = None
    month: str | None = None  # "2026-12"
    day: str | None = None  # ISO local date
    start: str | None = None  # ISO UTC
    flags: list[str] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)  # warnings shown when "Save anyway" was offered
    tell: bool = True
    reason: str | None = None
    new_client: dict[str, str] = field(default_factory=dict)  # name, phone, email being typed
    notice: str | None = None  # a one-off line above the next screen
    scope: str | None = None  # a series visit: which visits a move or a cancellation concerns ("this", ...)
    skip: list[str] = field(default_factory=list)  # ISO UTC starts of colliding dates shown with "skip them"
    repeat_weeks: int = 0  # /new: 0 once, else every 1-4 weeks
    repeat_count: int | None = None  # ... this many visits
    repeat_until: str | None = None  # ... or until this ISO local date

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Work:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


async def load(store: Store, chat_id: int) -> tuple[Draft, Work]:
    """The chat's draft (created if missing) and its workspace dialog."""
    draft, _ = await drafts.load(store, chat_id)
    draft = draft or Draft()
    return draft, Work.from_dict(draft.work)


async def save(store: Store, chat_id: int, draft: Draft, work: Work | None) -> None:
    """Keep the workspace dialog (None ends it) without touching a booking dialog in the same chat."""
    _, message_id = await drafts.load(store, chat_id)
    draft.work = work.to_dict() if work is not None else {}
    await drafts.save(store, chat_id, draft, message_id)
