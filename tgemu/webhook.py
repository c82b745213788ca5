"""Webhook delivery: updates posted to the bot's replicas round-robin, as a load balancer in front of them does.

Telegram posts each update to the webhook URL given in setWebhook; a reverse proxy or load balancer
hands it to one of the bot's processes. The relay plays both parts on loopback: each update goes to the
next target at once (a chat's consecutive updates land on alternating processes), with the secret
token header, and a method in the response body (`{"method": "answerCallbackQuery", ...}`) is carried
out as Telegram does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

import aiohttp

from tgemu.errors import ApiError

if TYPE_CHECKING:
    from tgemu.server import BotApiEmulator

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ATTEMPTS = 5  # Telegram keeps retrying a failed delivery; a test's relay gives up after a few
RETRY_DELAY = 0.2


class WebhookRelay:
    """Posts updates to loopback targets round-robin while the emulator has a webhook set."""

    def __init__(self, emulator: BotApiEmulator) -> None:
        self.emulator = emulator
        self.targets: list[str] = []
        self.failed = 0  # updates no target accepted
        self.delivered: Counter[str] = Counter()  # target -> updates it accepted
        self.replies: Counter[str] = Counter()  # method -> calls made in webhook responses
        self._turns: Counter[int] = Counter()  # chat -> updates delivered so far
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def to(self, *targets: str) -> None:
        """Deliver to these URLs (http://127.0.0.1:PORT/path of each replica) instead of the webhook URL."""
        self.targets = list(targets)

    def deliver(self, update: dict[str, Any]) -> None:
        """Post the update in the background, to the next target."""
        self.emulator.begin_delivery()  # busy from now on, so that wait_idle() waits for the post
        chat = _chat_of(update)
        turn = self._turns[chat]
        self._turns[chat] += 1
        task = asyncio.get_running_loop().create_task(self._post(update, turn))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _post(self, update: dict[str, Any], turn: int) -> None:
        emulator = self.emulator
        if self._session is None:
            # As Telegram: no more posts under way at once than setWebhook's max_connections; a post the
            # bot holds open (waiting for a tap's answer) keeps the next update waiting for a connection.
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=60),
                connector=aiohttp.TCPConnector(limit=emulator.webhook_connections),
            )
        try:
            for attempt in range(ATTEMPTS):
                target = self.targets[(turn + attempt) % len(self.targets)]
                try:
                    async with self._session.post(
                        target, json=update, headers={SECRET_HEADER: emulator.webhook_secret}
                    ) as response:
                        body = await response.read()
                        if response.status == 200:
                            self.delivered[target] += 1
                            await self._reply(body)
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass  # as Telegram does: try again a little later
                await asyncio.sleep(RETRY_DELAY)
            self.failed += 1
            log.warning("update %s: no webhook target accepted it", update["update_id"])
        finally:
            emulator.end_delivery()

    async def _reply(self, body: bytes) -> None:
        """Carry out a method the bot put in its response, as Telegram does (its result goes nowhere)."""
        if not body.strip():
            return
        try:
            values = json.loads(body)
        except ValueError:
            return
        if not isinstance(values, dict) or not isinstance(values.get("method"), str):
            return
        method = values.pop("method")
        self.replies[method] += 1
        with contextlib.suppress(ApiError):
            await self.emulator.call(method, values)


def _chat_of(update: dict[str, Any]) -> int:
    """The chat an update belongs to (0 for updates of no chat)."""
    for kind, payload in update.items():
        if kind == "update_id" or not isinstance(payload, dict):
            continue
        message = payload.get("message", payload) if kind == "callback_query" else payload
        chat = message.get("chat") or payload.get("from") or {}
        return int(chat.get("id", 0))
    return 0
