"""PTB's ExtBot without the work on inline keyboards that nothing reads: the same calls, the same answers.

A screen's keyboard (a month picker has ~40 buttons) cost more of the bot's CPU than anything else in a Bot API
call: PTB serialises it button by button through its generic `to_dict`, parses the copy Telegram echoes back
into a new Message, and parses it once more in every tap's update (the tapped message comes with its keyboard).
Here a keyboard of plain callback buttons is written out directly, the echoed copy is not parsed (the returned
Message carries the keyboard that was sent, which is what Telegram echoes for such buttons), and the keyboard
of a tapped message is not parsed: no handler reads `query.message.reply_markup` (the tapped button's data is
`query.data`), so it is None in the updates this bot hands out. A caller that reads nothing of the Message a
send or edit returns says so with `results_unread()`, and the answer is not parsed at all.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message
from telegram.ext import ExtBot

# Every InlineKeyboardButton field but the two a plain callback button has: any of them set means the slow path.
_OTHER_FIELDS = tuple(f for f in InlineKeyboardButton.__slots__ if f not in ("text", "callback_data"))

# The plain keyboard of the send or edit under way in this task, and whether Telegram echoed it back.
_SENT: ContextVar[list[Any] | None] = ContextVar("sent_keyboard", default=None)
_UNREAD: ContextVar[bool] = ContextVar("results_unread", default=False)


@contextlib.contextmanager
def results_unread() -> Iterator[None]:
    """Sends and edits in this block return True instead of the Message (as edits of inline messages do)."""
    token = _UNREAD.set(True)
    try:
        yield
    finally:
        _UNREAD.reset(token)


def plain_keyboard(markup: object) -> list[list[dict[str, str]]] | None:
    """The keyboard as Bot API JSON if every button is text and string callback data only, else None."""
    if type(markup) is not InlineKeyboardMarkup or markup.api_kwargs:
        return None
    rows = []
    for row in markup.inline_keyboard:
        out = []
        for button in row:
            if type(button.callback_data) is not str or button.api_kwargs:
                return None
            for name in _OTHER_FIELDS:
                if getattr(button, name) is not None:
                    return None
            out.append({"text": button.text, "callback_data": button.callback_data})
        rows.append(out)
    return rows


def drop_tapped_keyboard(update: dict[str, Any]) -> dict[str, Any]:
    """The update (a Bot API dict) without the keyboard of the message a callback query came from."""
    query = update.get("callback_query")
    if isinstance(query, dict):
        message = query.get("message")
        if isinstance(message, dict) and "reply_markup" in message:
            query["message"] = {k: v for k, v in message.items() if k != "reply_markup"}
    return update


class LeanBot(ExtBot[None]):
    """ExtBot with keyboards written out directly and Telegram's echoes of them left unparsed."""

    async def _send_message(self, endpoint: str, data: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        markup = kwargs.get("reply_markup")
        keyboard = plain_keyboard(markup)
        if keyboard is None:
            return await super()._send_message(endpoint, data, *args, **kwargs)
        sent = [markup, keyboard, False]  # the markup, its JSON, whether the answer echoed it
        token = _SENT.set(sent)
        try:
            message = await super()._send_message(endpoint, data, *args, **kwargs)
        finally:
            _SENT.reset(token)
        if sent[2] and isinstance(message, Message):
            with message._unfrozen():
                message.reply_markup = markup
        return message

    async def _do_post(self, endpoint: str, data: dict[str, Any], **kwargs: Any) -> Any:
        sent = _SENT.get()
        if sent is not None and data.get("reply_markup") is sent[0]:
            data["reply_markup"] = {"inline_keyboard": sent[1]}
        result = await super()._do_post(endpoint, data, **kwargs)
        if isinstance(result, dict) and _UNREAD.get() and endpoint != "getUpdates":
            return True
        if sent is not None and isinstance(result, dict) and "reply_markup" in result:
            del result["reply_markup"]
            sent[2] = True
        elif endpoint == "getUpdates" and isinstance(result, list):
            for update in result:
                drop_tapped_keyboard(update)
        return result
