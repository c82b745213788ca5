"""In webhook mode, the answer to a button tap rides on the webhook's HTTP response: one Bot API call less.

Telegram lets a webhook answer with one method call in its response body. The webhook handler waits
briefly (WAIT) for the tap's answer; `answer()` hands it over here instead of calling the API. If the wait
ends first, the response goes out empty and the answer is sent as a call of its own.
"""

from __future__ import annotations

import asyncio
from typing import Any

# How long a webhook post waits for its tap's answer. Telegram delivers over at most max_connections posts at
# once, and one held open is one that delivers nothing else: 100 connections held 5 s each let through only
# 20 updates a second, and taps queued behind them were answered after Telegram's 15 s. A tap answered later
# than this is answered with a call of its own.
WAIT = 1.0

_open: dict[str, asyncio.Future[dict[str, Any] | None]] = {}  # callback query id -> its pending response


def offer(query_id: str, text: str | None, show_alert: bool) -> bool:
    """Give the answer to the webhook response still open for this query; False if none is."""
    waiting = _open.pop(query_id, None)
    if waiting is None or waiting.done():
        return False
    body: dict[str, Any] = {"method": "answerCallbackQuery", "callback_query_id": query_id}
    if text:
        body["text"] = text
    if show_alert:
        body["show_alert"] = True
    waiting.set_result(body)
    return True


def give_up(query_id: str) -> None:
    """The update failed before answering: let its webhook response go out empty now."""
    waiting = _open.pop(query_id, None)
    if waiting is not None and not waiting.done():
        waiting.set_result(None)


def expect(query_id: str) -> asyncio.Future[dict[str, Any] | None]:
    """Open the wait for this query's answer; call before the update is queued."""
    waiting: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
    _open[query_id] = waiting
    return waiting


async def response_body(query_id: str, waiting: asyncio.Future[dict[str, Any] | None]) -> dict[str, Any] | None:
    """The method call to answer the webhook with, once the tap is answered; None if that takes too long."""
    try:
        return await asyncio.wait_for(waiting, WAIT)
    except TimeoutError:
        return None
    finally:
        if _open.get(query_id) is waiting:
            del _open[query_id]
