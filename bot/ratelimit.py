"""Rate limiting where Telegram limits: answers go out at once, bulk sends are paced, flood waits are per chat.

Telegram allows a bot about 30 messages a second overall and about one a second per chat, and answers
429 with `retry_after` past that. A person waiting for the next screen is never queued behind a reminder
run: calls made while handling an update go straight out. Calls made inside `bulk_sends()` (the sweep's
reminders and notices, broadcasts) are spaced to `bulk_per_second` overall and one per chat per
`bulk_chat_interval`. A 429 pauses only the chat it names, and the call is retried after the wait until
Telegram accepts it: a reply is never dropped because of flood control.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import warnings
from collections.abc import Callable, Coroutine, Iterator
from contextvars import ContextVar
from datetime import timedelta
from typing import Any

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

log = logging.getLogger(__name__)

JSON = bool | dict[str, Any] | list[dict[str, Any]]
ChatKey = int | str | None  # None: calls that name no chat

BULK_PER_SECOND = 20.0  # leaves a third of Telegram's ~30/s for the answers to people
BULK_CHAT_INTERVAL = 1.0
RETRY_MARGIN = 0.1  # Telegram's retry_after is whole seconds; do not come back a moment too early
_FORGET_AFTER = 1024  # prune finished waits once the maps hold this many chats

_bulk: ContextVar[bool] = ContextVar("bulk_sends", default=False)


@contextlib.contextmanager
def bulk_sends() -> Iterator[None]:
    """Calls made in this block (and the tasks it awaits) go through the paced queue."""
    token = _bulk.set(True)
    try:
        yield
    finally:
        _bulk.reset(token)


def _chat_of(data: dict[str, Any]) -> ChatKey:
    chat = data.get("chat_id")
    if type(chat) is int:  # the common case, without the cost of a try block per call
        return chat
    try:
        return int(chat)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return chat if isinstance(chat, str) else None


def _seconds(exc: RetryAfter) -> float:
    """retry_after in seconds, whichever type PTB's PTB_TIMEDELTA setting makes it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PTB warns about the int form, which it still returns by default
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class ChatRateLimiter(BaseRateLimiter[None]):
    """PTB's rate limiter hook: no pacing for answers, pacing for bulk sends, a flood wait per chat."""

    def __init__(
        self,
        bulk_per_second: float = BULK_PER_SECOND,
        bulk_chat_interval: float = BULK_CHAT_INTERVAL,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.bulk_gap = 1.0 / bulk_per_second
        self.bulk_chat_interval = bulk_chat_interval
        self._clock = clock
        self._blocked: dict[ChatKey, float] = {}  # chat -> when its flood wait ends
        self._next_bulk = 0.0  # the next free slot of the bulk queue
        self._next_chat: dict[ChatKey, float] = {}  # chat -> its next free bulk slot

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to tear down."""

    def _now(self) -> float:
        return self._clock() if self._clock else asyncio.get_running_loop().time()

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, JSON]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: None,
    ) -> JSON:
        chat = _chat_of(data)
        if _bulk.get():
            await self._pace(chat)
        while True:
            blocked_until = self._blocked.get(chat)
            # Most calls name a chat that never had a flood wait: no clock read for them.
            wait = 0.0 if blocked_until is None else blocked_until - self._now()
            if wait > 0:
                await asyncio.sleep(wait)
                continue  # a newer 429 may have moved the end of the wait
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as exc:
                until = self._now() + _seconds(exc) + RETRY_MARGIN
                self._blocked[chat] = max(self._blocked.get(chat, 0.0), until)
                log.info("flood control on %s for one chat: retrying in %.1f s", endpoint, until - self._now())
                self._forget_old()

    async def _pace(self, chat: ChatKey) -> None:
        """Wait for this bulk call's slot: overall spacing, and one call per chat per interval."""
        now = self._now()
        slot = max(now, self._next_bulk, self._next_chat.get(chat, 0.0))
        self._next_bulk = slot + self.bulk_gap
        self._next_chat[chat] = slot + self.bulk_chat_interval
        self._forget_old()
        if slot > now:
            await asyncio.sleep(slot - now)

    def _forget_old(self) -> None:
        now = self._now()
        for table in (self._blocked, self._next_chat):
            if len(table) >= _FORGET_AFTER:
                for key in [k for k, until in table.items() if until <= now]:
                    del table[key]
