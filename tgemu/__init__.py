"""A local Telegram Bot API server and scripted Telegram users, for tests, benchmarks and the demo.

It speaks the Bot API over HTTP on a loopback port, so a real python-telegram-bot Application talks to
it exactly as it talks to Telegram, and it is as strict as Telegram about what it accepts.
Run it on its own with `python -m tgemu --port N --token T`; scripted users are then driven from another
process over its /_emu/ routes (`tgemu.control`, client `tgemu.remote`).
"""

from tgemu.entities import parse_html, parse_markdown_v2, utf16_len
from tgemu.errors import (
    BLOCKED,
    CALLBACK_ANSWER_LIMIT,
    CALLBACK_DATA_LIMIT,
    CANT_INITIATE,
    CAPTION_LIMIT,
    NOT_MODIFIED,
    QUERY_TOO_OLD,
    TEXT_LIMIT,
    ApiError,
)
from tgemu.server import BotApiEmulator, MessageListener
from tgemu.state import CallbackAnswer, ChatMessage, StoredFile
from tgemu.users import TelegramUser

__all__ = [
    "BLOCKED",
    "CALLBACK_ANSWER_LIMIT",
    "CALLBACK_DATA_LIMIT",
    "CANT_INITIATE",
    "CAPTION_LIMIT",
    "NOT_MODIFIED",
    "QUERY_TOO_OLD",
    "TEXT_LIMIT",
    "ApiError",
    "BotApiEmulator",
    "CallbackAnswer",
    "ChatMessage",
    "MessageListener",
    "StoredFile",
    "TelegramUser",
    "parse_html",
    "parse_markdown_v2",
    "utf16_len",
]
