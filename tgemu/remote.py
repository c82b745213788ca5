"""Scripted users of an emulator running in another process (`python -m tgemu`), through its /_emu/ routes.

`RemoteEmulator` mirrors the chats of the users it drives from the emulator's event stream and offers
the part of BotApiEmulator / TelegramUser that benchmarks use: `user()`, `listeners`, `requests`,
`errors`, the relay's figures, and per user `messages`, `answers`, `unanswered`, `send`,
`share_contact` and `tap_data`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import fields
from typing import Any

import aiohttp

from tgemu.server import MessageListener
from tgemu.state import CallbackAnswer, ChatMessage, StoredFile


def _message(data: dict[str, Any]) -> ChatMessage:
    document = data.get("document")
    return ChatMessage(**{**data, "document": StoredFile(**document, data=b"") if document else None})


class RemoteUser:
    """One scripted user: actions go to the emulator, its chat is the mirror the event stream keeps."""

    def __init__(self, emulator: RemoteEmulator, user_id: int, first_name: str) -> None:
        self.emulator = emulator
        self.id = user_id
        self.first_name = first_name
        self._messages: dict[int, ChatMessage] = {}
        self._ordered: list[ChatMessage] = []
        self.answers: list[CallbackAnswer] = []
        self.unanswered: list[str] = []
        self._registered = False

    @property
    def messages(self) -> list[ChatMessage]:
        """Live messages of the chat, both directions, in order."""
        return self._ordered

    def apply(self, message: ChatMessage, answers: list[dict[str, Any]]) -> ChatMessage:
        """Take in a message's new state; an edited message is changed in place, as in the emulator itself."""
        known = self._messages.get(message.message_id)
        if known is None:
            self._messages[message.message_id] = known = message
        else:
            for f in fields(ChatMessage):
                setattr(known, f.name, getattr(message, f.name))
        self._ordered = [m for _, m in sorted(self._messages.items()) if not m.deleted]
        if len(answers) > len(self.answers):
            self.answers = [CallbackAnswer(**a) for a in answers]
        return known

    async def _register(self) -> None:
        if not self._registered:
            await self.emulator.post(f"/_emu/users/{self.id}", {"first_name": self.first_name})
            self._registered = True

    async def send(self, text: str, *, wait: bool = False) -> ChatMessage:
        """Send a text message (never waits: follow the chat instead)."""
        await self._register()
        sent = _message(await self.emulator.post(f"/_emu/users/{self.id}/message", {"text": text}))
        return self.apply(sent, [])

    async def share_contact(self, phone: str, *, wait: bool = False) -> ChatMessage:
        """Share the own phone number."""
        await self._register()
        sent = _message(await self.emulator.post(f"/_emu/users/{self.id}/message", {"phone": phone}))
        return self.apply(sent, [])

    async def tap_data(self, data: str, message_id: int | None = None, *, wait: bool = False) -> None:
        """Tap a button of a bot message (by its callback data)."""
        await self._register()
        if message_id is None:
            message_id = self._ordered[-1].message_id
        await self.emulator.post(f"/_emu/users/{self.id}/callback", {"data": data, "message_id": message_id})


class RemoteRelay:
    """The webhook relay's figures as last fetched (`RemoteEmulator.refresh`)."""

    def __init__(self) -> None:
        self.targets: list[str] = []
        self.delivered: Counter[str] = Counter()
        self.replies: Counter[str] = Counter()


class RemoteEmulator:
    """Drives the users of the emulator at `url` (http://host:port) and follows their chats."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.base_url = f"{self.url}/bot"
        self.listeners: list[MessageListener] = []
        self.requests: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.relay = RemoteRelay()
        self._users: dict[int, RemoteUser] = {}
        self._session: aiohttp.ClientSession | None = None
        self._pump: asyncio.Task[None] | None = None
        self._seen = 0

    async def __aenter__(self) -> RemoteEmulator:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        self._pump = asyncio.get_running_loop().create_task(self._follow())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        if self._session is not None:
            await self._session.close()

    def user(self, user_id: int, first_name: str) -> RemoteUser:
        """The scripted user with this id (registered with the emulator on its first action)."""
        if user_id not in self._users:
            self._users[user_id] = RemoteUser(self, user_id, first_name)
        return self._users[user_id]

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        assert self._session is not None
        async with self._session.post(self.url + path, json=body) as resp:
            resp.raise_for_status()
            return await resp.json()

    async def route(self, *targets: str) -> None:
        """Have the emulator's webhook relay post updates to these bots in turn."""
        await self.post("/_emu/relay", {"targets": list(targets)})
        self.relay.targets = list(targets)

    async def refresh(self) -> None:
        """Fetch the Bot API call counts, the relay's figures and the taps never answered."""
        assert self._session is not None
        async with self._session.get(self.url + "/_emu/stats") as resp:
            resp.raise_for_status()
            stats = await resp.json()
        self.requests, self.errors = Counter(stats["requests"]), Counter(stats["errors"])
        self.relay.delivered, self.relay.replies = Counter(stats["delivered"]), Counter(stats["replies"])
        for user in self._users.values():
            user.unanswered = list(stats["unanswered"].get(str(user.id), []))

    async def _follow(self) -> None:
        """Apply the emulator's chat events to the users' mirrors and tell the listeners, as they come."""
        assert self._session is not None
        while True:
            try:
                async with self._session.get(self.url + "/_emu/events", params={"after": str(self._seen)}) as resp:
                    events = await resp.json()
            except (aiohttp.ClientError, TimeoutError):
                await asyncio.sleep(0.1)
                continue
            for event in events:
                self._seen = max(self._seen, int(event["seq"]))
                message = _message(event["message"])
                user = self._users.get(message.chat_id)
                if user is None:
                    continue
                known = user.apply(message, event["answers"])
                for listener in list(self.listeners):
                    listener(event["event"], known)
