"""The user side of the emulator over HTTP, under /_emu/: scripted users driven from another process.

A benchmark that runs the emulator as a process of its own (`python -m tgemu`) acts as its users
through these routes and follows their chats through a long-polled stream of events
(`tgemu.remote` is the client). Nothing is recorded until the first /_emu/ request.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tgemu.state import ChatMessage

if TYPE_CHECKING:
    from tgemu.server import BotApiEmulator

POLL_SECONDS = 20.0


def message_json(message: ChatMessage) -> dict[str, Any]:
    """A chat message as the remote client rebuilds it (a document without its bytes)."""
    data = asdict(message)
    if message.document is not None:
        data["document"] = {k: v for k, v in data["document"].items() if k != "data"}
    return data


class Control:
    """The /_emu/ routes of one emulator and the stream of chat events they serve."""

    def __init__(self, emulator: BotApiEmulator) -> None:
        self.emulator = emulator
        self.events: list[dict[str, Any]] = []
        self.recording = False
        self._new = asyncio.Event()

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/_emu/users/{id}", self._user),
            web.post("/_emu/users/{id}/message", self._message),
            web.post("/_emu/users/{id}/callback", self._callback),
            web.get("/_emu/events", self._events),
            web.get("/_emu/stats", self._stats),
            web.post("/_emu/relay", self._relay),
        ]

    def _record(self, event: str, message: ChatMessage) -> None:
        chat = self.emulator._chats.get(message.chat_id)
        answers = [asdict(a) for a in chat.answers] if chat is not None else []
        self.events.append(
            {"seq": len(self.events) + 1, "event": event, "message": message_json(message), "answers": answers}
        )
        self._new.set()

    def _start(self) -> None:
        if not self.recording:
            self.recording = True
            self.emulator.listeners.append(self._record)

    async def _user(self, request: web.Request) -> web.Response:
        self._start()
        body = await request.json()
        self.emulator.user(int(request.match_info["id"]), str(body.get("first_name") or "User"))
        return web.json_response({"ok": True})

    async def _message(self, request: web.Request) -> web.Response:
        self._start()
        user = self.emulator._users[int(request.match_info["id"])]
        body = await request.json()
        if body.get("phone"):
            message = await user.share_contact(str(body["phone"]), wait=False)
        else:
            message = await user.send(str(body.get("text", "")), wait=False)
        self._record("sent", message)
        return web.json_response(message_json(message))

    async def _callback(self, request: web.Request) -> web.Response:
        self._start()
        user = self.emulator._users[int(request.match_info["id"])]
        body = await request.json()
        await user.tap_data(str(body["data"]), int(body["message_id"]), wait=False)
        return web.json_response({"ok": True})

    async def _events(self, request: web.Request) -> web.Response:
        """Events after `after`, waiting up to POLL_SECONDS for the first one."""
        self._start()
        after = int(request.query.get("after", "0"))
        if len(self.events) <= after:
            self._new.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new.wait(), POLL_SECONDS)
        return web.json_response(self.events[after:])

    async def _stats(self, request: web.Request) -> web.Response:
        emulator = self.emulator
        unanswered: dict[str, list[str]] = {}
        for query in emulator._queries.values():
            if not query.answered:
                unanswered.setdefault(str(query.chat_id), []).append(query.data)
        return web.json_response(
            {
                "requests": dict(emulator.requests),
                "errors": dict(emulator.errors),
                "delivered": dict(emulator.relay.delivered),
                "replies": dict(emulator.relay.replies),
                "unanswered": unanswered,
            }
        )

    async def _relay(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.emulator.relay.to(*[str(t) for t in body.get("targets", [])])
        return web.json_response({"ok": True})
