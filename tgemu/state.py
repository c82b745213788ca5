"""What the emulator stores: chats, their messages, uploaded files and pending callback queries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class StoredFile:
    """A file the bot uploaded."""

    file_id: str
    file_unique_id: str
    file_name: str
    mime_type: str
    data: bytes

    def to_api(self) -> dict[str, Any]:
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_name": self.file_name,
            "mime_type": self.mime_type,
            "file_size": len(self.data),
        }


@dataclass
class ChatMessage:
    """One message in a private chat as the user sees it; bot messages have edits applied in place."""

    message_id: int
    chat_id: int
    from_bot: bool
    date: int
    text: str = ""
    entities: list[dict[str, Any]] = field(default_factory=list)
    inline_keyboard: list[list[dict[str, Any]]] | None = None
    reply_keyboard: list[list[dict[str, Any]]] | None = None
    document: StoredFile | None = None
    contact: dict[str, Any] | None = None
    edit_date: int | None = None
    deleted: bool = False

    @property
    def buttons(self) -> list[list[str]]:
        """Inline keyboard labels, row by row."""
        return [[button["text"] for button in row] for row in self.inline_keyboard or []]

    @property
    def button_data(self) -> list[list[str | None]]:
        """Inline keyboard callback data, row by row (None for URL and other buttons)."""
        return [[button.get("callback_data") for button in row] for row in self.inline_keyboard or []]

    @property
    def reply_buttons(self) -> list[list[str]]:
        """Reply keyboard labels sent with this message, row by row."""
        return [[button["text"] for button in row] for row in self.reply_keyboard or []]


@dataclass(frozen=True)
class CallbackAnswer:
    """How the bot answered one callback query."""

    data: str | None
    text: str | None
    show_alert: bool
    url: str | None


@dataclass
class Query:
    chat_id: int
    message_id: int
    data: str
    created: float
    answered: bool = False


@dataclass
class Chat:
    user: dict[str, Any]
    started: bool = False
    blocked: bool = False
    messages: list[ChatMessage] = field(default_factory=list)
    answers: list[CallbackAnswer] = field(default_factory=list)
    reply_keyboard: list[list[dict[str, Any]]] | None = None
    one_time_keyboard: bool = False
    last_id: int = 0
    tokens: float = 0.0
    refilled: float = 0.0

    def next_id(self) -> int:
        self.last_id += 1
        return self.last_id

    def find(self, message_id: int) -> ChatMessage | None:
        for message in reversed(self.messages):
            if message.message_id == message_id and not message.deleted:
                return message
        return None

    def api(self) -> dict[str, Any]:
        chat = {"id": self.user["id"], "type": "private", "first_name": self.user["first_name"]}
        for key in ("last_name", "username"):
            if self.user.get(key):
                chat[key] = self.user[key]
        return chat
