"""A local Telegram Bot API server and scripted Telegram users, for tests, benchmarks and the demo.

It speaks the Bot API over HTTP on a loopback port, so a real python-telegram-bot Application talks to
it exactly as it talks to Telegram, and it is as strict as Telegram about what it accepts.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import re
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from aiohttp import web

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
CALLBACK_DATA_LIMIT = 64
CALLBACK_ANSWER_LIMIT = 200

NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
QUERY_TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"
CANT_INITIATE = "Forbidden: bot can't initiate conversation with a user"
BLOCKED = "Forbidden: bot was blocked by the user"

_INLINE_ACTIONS = (
    "callback_data",
    "url",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)
_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
_BUTTON_URL = re.compile(r"(https?|tg)://\S+")
_BOT_COMMAND = re.compile(r"(?<!\S)/[A-Za-z0-9_]{1,64}(@[A-Za-z0-9_]{3,32})?(?![A-Za-z0-9_@])")
_COMMAND_NAME = re.compile(r"[a-z0-9_]{1,32}")
_UPDATE_TYPES = ("message", "edited_message", "callback_query", "my_chat_member")


class ApiError(Exception):
    """A Bot API error answer: HTTP status, Telegram's description and optional retry_after."""

    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after


def _bad(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram's entity offsets."""
    return len(text.encode("utf-16-le")) // 2


# --- Telegram's HTML subset ------------------------------------------------------------------------

_HTML_TAGS = frozenset(
    {
        "a",
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "code",
        "pre",
        "tg-spoiler",
        "span",
        "blockquote",
        "tg-emoji",
    }
)
_SIMPLE_ENTITIES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "code": "code",
    "pre": "pre",
}
_NAMED_CHARS = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_CHAR_REF = re.compile(r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z]+);")


@dataclass
class _OpenTag:
    name: str
    attrs: dict[str, str]
    start: int
    language: str | None = None


def _char_ref(source: str, pos: int) -> tuple[str, int] | None:
    match = _CHAR_REF.match(source, pos)
    if match is None:
        return None
    ref = match.group(1)
    if ref.startswith("#"):
        code = int(ref[2:], 16) if ref[1] in "xX" else int(ref[1:])
        if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            return None
        return chr(code), match.end()
    char = _NAMED_CHARS.get(ref.lower())
    return (char, match.end()) if char else None


def _parse_attributes(source: str, pos: int, tag: str, begin: int) -> tuple[dict[str, str], int]:
    """Read a start tag's attributes from pos up to and including '>'; returns them and the next index."""
    attrs: dict[str, str] = {}
    size = len(source)
    while True:
        while pos < size and source[pos].isspace():
            pos += 1
        if pos >= size:
            raise _bad(f'can\'t parse entities: Unclosed start tag "{tag}" at byte offset {begin}')
        if source[pos] == ">":
            return attrs, pos + 1
        start = pos
        while pos < size and (source[pos].isalnum() or source[pos] in "-_"):
            pos += 1
        name = source[start:pos].lower()
        if not name:
            raise _bad(f'can\'t parse entities: Empty attribute name in the tag "{tag}" at byte offset {begin}')
        while pos < size and source[pos].isspace():
            pos += 1
        if pos < size and source[pos] != "=":
            if tag == "blockquote" and name == "expandable":
                attrs[name] = ""
                continue
            raise _bad(
                "can't parse entities: Expected equal sign in declaration of an attribute of the tag "
                f'"{tag}" at byte offset {begin}'
            )
        pos += 1
        while pos < size and source[pos].isspace():
            pos += 1
        if pos >= size:
            raise _bad(f'can\'t parse entities: Unclosed start tag "{tag}" at byte offset {begin}')
        value: list[str] = []
        quote = source[pos] if source[pos] in "'\"" else None
        if quote:
            pos += 1
            while pos < size and source[pos] != quote:
                ref = _char_ref(source, pos) if source[pos] == "&" else None
                if ref:
                    value.append(ref[0])
                    pos = ref[1]
                else:
                    value.append(source[pos])
                    pos += 1
            if pos >= size:
                raise _bad(f"can't parse entities: Unclosed start tag at byte offset {begin}")
            pos += 1
        else:
            while pos < size and not source[pos].isspace() and source[pos] != ">":
                value.append(source[pos])
                pos += 1
        attrs[name] = "".join(value)


def _html_entity(tag: _OpenTag, end: int) -> dict[str, Any] | None:
    length = end - tag.start
    if length <= 0:
        return None
    entity: dict[str, Any] = {"offset": tag.start, "length": length}
    if tag.name == "a":
        url = tag.attrs.get("href", "")
        if not url:
            return None
        match = re.fullmatch(r"tg://user\?id=(\d+)", url)
        if match:
            entity.update(type="text_mention", user={"id": int(match.group(1)), "is_bot": False, "first_name": ""})
        else:
            entity.update(type="text_link", url=url)
    elif tag.name == "blockquote":
        entity["type"] = "expandable_blockquote" if "expandable" in tag.attrs else "blockquote"
    elif tag.name == "tg-emoji":
        entity.update(type="custom_emoji", custom_emoji_id=tag.attrs.get("emoji-id", ""))
    else:
        entity["type"] = _SIMPLE_ENTITIES[tag.name]
        if tag.name == "pre" and tag.language:
            entity["language"] = tag.language
    return entity


def parse_html(source: str) -> tuple[str, list[dict[str, Any]]]:
    """Parse Telegram's HTML subset into plain text and entities, failing with Telegram's messages."""
    out: list[str] = []
    offset = 0
    stack: list[_OpenTag] = []
    entities: list[dict[str, Any]] = []
    size = len(source)
    pos = 0
    while pos < size:
        char = source[pos]
        if char != "<":
            ref = _char_ref(source, pos) if char == "&" else None
            if ref:
                char, pos = ref
            else:
                pos += 1
            out.append(char)
            offset += utf16_len(char)
            continue
        begin = len(source[:pos].encode())
        if pos + 1 < size and source[pos + 1] == "/":
            end = pos + 2
            while end < size and source[end] != ">" and not source[end].isspace():
                end += 1
            name = source[pos + 2 : end].lower()
            if not stack:
                raise _bad(f"can't parse entities: Unexpected end tag at byte offset {begin}")
            while end < size and source[end].isspace():
                end += 1
            if end >= size or source[end] != ">":
                raise _bad(f"can't parse entities: Unclosed end tag at byte offset {begin}")
            tag = stack.pop()
            if name and name != tag.name:
                raise _bad(
                    f"can't parse entities: Unmatched end tag at byte offset {begin}, "
                    f'expected "</{tag.name}>", found "</{name}>"'
                )
            pos = end + 1
            inside_pre = tag.name == "code" and stack and stack[-1].name == "pre"
            if inside_pre and tag.start == stack[-1].start:
                # <pre><code class="language-x"> is one pre entity carrying the language, as in Telegram.
                language = tag.attrs.get("class", "")
                stack[-1].language = language.removeprefix("language-") if language.startswith("language-") else None
                continue
            entity = _html_entity(tag, offset)
            if entity:
                entities.append(entity)
            continue
        end = pos + 1
        while end < size and source[end] != ">" and not source[end].isspace():
            end += 1
        name = source[pos + 1 : end].lower()
        if end >= size:
            raise _bad(f"can't parse entities: Unclosed start tag at byte offset {begin}")
        if name not in _HTML_TAGS:
            raise _bad(f'can\'t parse entities: Unsupported start tag "{name}" at byte offset {begin}')
        attrs, pos = _parse_attributes(source, end, name, begin)
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise _bad(f'can\'t parse entities: Tag "span" must have class "tg-spoiler" at byte offset {begin}')
        stack.append(_OpenTag(name, attrs, offset))
    if stack:
        raise _bad(f"can't parse entities: Can't find end tag corresponding to start tag \"{stack[-1].name}\"")
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def _strip(text: str, entities: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Trim surrounding whitespace like Telegram does, moving and clipping entities to match."""
    stripped = text.strip()
    if stripped == text:
        return text, entities
    lead = utf16_len(text[: len(text) - len(text.lstrip())])
    total = utf16_len(stripped)
    kept = []
    for entity in entities:
        start = max(entity["offset"] - lead, 0)
        end = min(entity["offset"] + entity["length"] - lead, total)
        if end > start:
            kept.append({**entity, "offset": start, "length": end - start})
    return stripped, kept


# --- stored state ----------------------------------------------------------------------------------


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
class _Query:
    chat_id: int
    message_id: int
    data: str
    created: float
    answered: bool = False


@dataclass
class _Chat:
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


class _Params:
    """Request parameters: strings from forms and multipart bodies, typed values from JSON bodies."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def __contains__(self, name: str) -> bool:
        return self.values.get(name) not in (None, "")

    def raw(self, name: str) -> Any:
        return self.values.get(name)

    def str(self, name: str) -> str | None:
        value = self.values.get(name)
        return None if value is None else str(value)

    def int(self, name: str, default: int | None = None) -> int | None:
        value = self.values.get(name)
        if value in (None, ""):
            return default
        try:
            return int(value)
        except (TypeError, ValueError):
            raise _bad(f'field "{name}" must be of type Integer') from None

    def float(self, name: str, default: float) -> float:
        value = self.values.get(name)
        if value in (None, ""):
            return default
        try:
            return float(value)
        except (TypeError, ValueError):
            raise _bad(f'field "{name}" must be of type Number') from None

    def bool(self, name: str) -> bool:
        value = self.values.get(name)
        return value is True or (isinstance(value, str) and value.lower() in ("true", "1"))

    def json(self, name: str) -> Any:
        value = self.values.get(name)
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except ValueError:
            raise _bad(f"can't parse {name} JSON object") from None


def _inline_keyboard(markup: dict[str, Any]) -> list[list[dict[str, Any]]]:
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise _bad('field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays')
    for row in rows:
        for button in row:
            if not isinstance(button, dict):
                raise _bad("can't parse inline keyboard button: InlineKeyboardButton must be an Object")
            if not isinstance(button.get("text"), str) or not button["text"]:
                raise _bad("can't parse inline keyboard button: Text must be non-empty")
            actions = [name for name in _INLINE_ACTIONS if button.get(name) is not None]
            if not actions:
                raise _bad("can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard")
            if len(actions) > 1:
                raise _bad(
                    "can't parse inline keyboard button: InlineKeyboardButton must have exactly one optional field"
                )
            data = button.get("callback_data")
            if data is not None and (not isinstance(data, str) or not 1 <= len(data.encode()) <= CALLBACK_DATA_LIMIT):
                raise _bad("BUTTON_DATA_INVALID")
            url = button.get("url")
            if url is not None and (not isinstance(url, str) or not _BUTTON_URL.fullmatch(url)):
                raise _bad("BUTTON_URL_INVALID")
    return rows


def _reply_keyboard(markup: dict[str, Any]) -> list[list[dict[str, Any]]]:
    rows = markup["keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise _bad('field "keyboard" of the ReplyKeyboardMarkup must be an Array of Arrays')
    normalised = []
    for row in rows:
        buttons = []
        for button in row:
            entry = {"text": button} if isinstance(button, str) else button
            if not isinstance(entry, dict) or not isinstance(entry.get("text"), str) or not entry["text"]:
                raise _bad("can't parse keyboard button: Text must be non-empty")
            buttons.append(entry)
        normalised.append(buttons)
    return normalised


@dataclass
class _Markup:
    inline: list[list[dict[str, Any]]] | None = None
    keyboard: list[list[dict[str, Any]]] | None = None
    one_time: bool = False
    remove: bool = False


def _markup(params: _Params) -> _Markup:
    raw = params.json("reply_markup")
    if raw in (None, ""):
        return _Markup()
    if not isinstance(raw, dict):
        raise _bad("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in raw:
        return _Markup(inline=_inline_keyboard(raw))
    if "keyboard" in raw:
        return _Markup(keyboard=_reply_keyboard(raw), one_time=bool(raw.get("one_time_keyboard")))
    if raw.get("remove_keyboard") is True:
        return _Markup(remove=True)
    if raw.get("force_reply") is True:
        return _Markup()
    raise _bad("can't parse reply keyboard markup JSON object")


def _inline_only(params: _Params) -> list[list[dict[str, Any]]] | None:
    markup = _markup(params)
    if markup.keyboard is not None or markup.remove:
        raise _bad("inline keyboard expected")
    return markup.inline


def _formatted(params: _Params, text_field: str, entities_field: str) -> tuple[str, list[dict[str, Any]]]:
    text = params.str(text_field) or ""
    mode = params.str("parse_mode") or ""
    entities_raw = params.json(entities_field)
    if entities_raw:
        if not isinstance(entities_raw, list):
            raise _bad(f"can't parse {entities_field} JSON object")
        return _strip(text, entities_raw)
    if mode == "":
        return _strip(text, [])
    if mode.lower() == "html":
        return _strip(*parse_html(text))
    if mode.lower() in ("markdown", "markdownv2"):
        return _strip(*parse_markdown_v2(text))
    raise _bad(f"unsupported parse_mode {mode}")


_MD_RESERVED = "_*[]()~`>#+-=|{}.!"
_MD_MARKS = (("||", "spoiler"), ("__", "underline"), ("*", "bold"), ("_", "italic"), ("~", "strikethrough"))


def parse_markdown_v2(source: str) -> tuple[str, list[dict[str, Any]]]:
    """Parse Telegram's MarkdownV2 (bold, italic, underline, strikethrough, spoiler, code, pre, links)."""
    out: list[str] = []
    offset = 0
    stack: list[tuple[str, str, int, int]] = []
    entities: list[dict[str, Any]] = []
    size = len(source)
    pos = 0

    def emit(text: str) -> None:
        nonlocal offset
        out.append(text)
        offset += utf16_len(text)

    while pos < size:
        char = source[pos]
        begin = len(source[:pos].encode())
        if char == "\\" and pos + 1 < size:
            emit(source[pos + 1])
            pos += 2
            continue
        if char == "`":
            fence = "```" if source.startswith("```", pos) else "`"
            end = pos + len(fence)
            while end < size and not source.startswith(fence, end):
                end += 2 if source[end] == "\\" else 1
            end = end if end < size else -1
            if end < 0:
                raise _bad(f"can't parse entities: Can't find end of the entity starting at byte offset {begin}")
            body = source[pos + len(fence) : end]
            entity: dict[str, Any] = {"type": "code" if fence == "`" else "pre", "offset": offset}
            if fence == "```" and "\n" in body:
                language, body = body.split("\n", 1)
                if language.strip():
                    entity["language"] = language.strip()
            body = re.sub(r"\\(.)", r"\1", body)
            entity["length"] = utf16_len(body)
            emit(body)
            if entity["length"]:
                entities.append(entity)
            pos = end + len(fence)
            continue
        mark = next((m for m in _MD_MARKS if source.startswith(m[0], pos)), None)
        if mark:
            if stack and stack[-1][0] == mark[0]:
                _, kind, start, _ = stack.pop()
                if offset > start:
                    entities.append({"type": kind, "offset": start, "length": offset - start})
            else:
                stack.append((mark[0], mark[1], offset, begin))
            pos += len(mark[0])
            continue
        if char == "[":
            stack.append(("[", "text_link", offset, begin))
            pos += 1
            continue
        if char == "]" and stack and stack[-1][0] == "[":
            _, _, start, link_begin = stack.pop()
            match = re.match(r"\(((?:[^)\\]|\\.)*)\)", source[pos + 1 :])
            if match is None:
                raise _bad(f"can't parse entities: Can't find end of the entity starting at byte offset {link_begin}")
            url = re.sub(r"\\(.)", r"\1", match.group(1))
            if offset > start and url:
                entities.append({"type": "text_link", "offset": start, "length": offset - start, "url": url})
            pos += 1 + match.end()
            continue
        if char in _MD_RESERVED:
            raise _bad(
                f"can't parse entities: Character '{char}' is reserved and must be escaped with the preceding '\\'"
            )
        emit(char)
        pos += 1
    if stack:
        raise _bad(f"can't parse entities: Can't find end of the entity starting at byte offset {stack[-1][3]}")
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


# --- the server ------------------------------------------------------------------------------------

MessageListener = Callable[[str, ChatMessage], None]


class BotApiEmulator:
    """A strict, in-process Telegram Bot API server for one bot token."""

    _serving: ClassVar[list[BotApiEmulator]] = []

    def __init__(
        self,
        token: str = "123456:TEST",
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        clock: Callable[[], float] = time.time,
        global_per_second: float | None = 30.0,
        chat_burst: int = 20,
        chat_per_second: float | None = 1.0,
        callback_timeout: float = 15.0,
        quiet: float = 0.05,
        action_timeout: float = 10.0,
        bot_username: str = "bookingbot_test_bot",
        bot_name: str = "Booking Bot",
    ) -> None:
        self.token = token
        self.host = host
        self.port = port
        self.clock = clock
        self.global_per_second = global_per_second
        self.chat_burst = chat_burst
        self.chat_per_second = chat_per_second
        self.callback_timeout = callback_timeout
        self.quiet = quiet
        self.action_timeout = action_timeout
        self.bot = {
            "id": int(token.split(":", 1)[0]) if token.split(":", 1)[0].isdigit() else 1,
            "is_bot": True,
            "first_name": bot_name,
            "username": bot_username,
        }
        self.requests: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.commands: dict[tuple[str, str], list[dict[str, str]]] = {}
        self.webhook_url = ""
        self.listeners: list[MessageListener] = []
        self._skew = 0.0
        self._chats: dict[int, _Chat] = {}
        self._users: dict[int, TelegramUser] = {}
        self._files: dict[str, StoredFile] = {}
        self._queries: dict[str, _Query] = {}
        self._updates: deque[tuple[int, dict[str, Any]]] = deque()
        self._last_update_id = 0
        self._fetched_upto = 0
        self._allowed_updates: list[str] = []
        self._sends: deque[float] = deque()
        self._poll_generation = 0
        self._in_flight = 0
        self._last_activity = 0.0
        self._wakeup = asyncio.Event()
        self._changed = asyncio.Event()
        self._closing = False
        self._queues: list[asyncio.Queue[Any]] = []
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._methods: dict[str, tuple[str, Callable[[_Params], Awaitable[Any]]]] = {
            name.lower(): (name, handler)
            for name, handler in {
                "getMe": self._get_me,
                "getUpdates": self._get_updates,
                "deleteWebhook": self._delete_webhook,
                "setWebhook": self._set_webhook,
                "getWebhookInfo": self._get_webhook_info,
                "setMyCommands": self._set_my_commands,
                "getMyCommands": self._get_my_commands,
                "deleteMyCommands": self._delete_my_commands,
                "sendMessage": self._send_message,
                "editMessageText": self._edit_message_text,
                "editMessageCaption": self._edit_message_caption,
                "editMessageReplyMarkup": self._edit_message_reply_markup,
                "deleteMessage": self._delete_message,
                "answerCallbackQuery": self._answer_callback_query,
                "sendDocument": self._send_document,
                "getFile": self._get_file,
                "sendChatAction": self._send_chat_action,
                "getChat": self._get_chat,
                "close": self._true,
                "logOut": self._true,
            }.items()
        }

    # lifecycle

    @property
    def base_url(self) -> str:
        """What to pass to ApplicationBuilder().base_url(); PTB appends the token and method."""
        return f"http://{self.host}:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        """What to pass to ApplicationBuilder().base_file_url()."""
        return f"http://{self.host}:{self.port}/file/bot"

    async def start(self) -> None:
        """Listen on the configured loopback port (a free one if 0)."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        # Cancel a long poll when PTB drops its connection, so stop() never waits on it.
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]  # the port actually bound when 0 was asked for
        self._closing = False
        self._last_activity = asyncio.get_running_loop().time()
        BotApiEmulator._serving.append(self)

    async def stop(self) -> None:
        """End pending long polls and close the server."""
        self._closing = True
        self._wake()
        if self in BotApiEmulator._serving:
            BotApiEmulator._serving.remove(self)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> BotApiEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @classmethod
    def serving(cls, bot_base_url: str) -> BotApiEmulator | None:
        """The running emulator a PTB Bot with this (token-expanded) base_url talks to, if any."""
        for emulator in cls._serving:
            if bot_base_url == f"{emulator.base_url}{emulator.token}":
                return emulator
        return None

    # clock

    def now(self) -> float:
        """The emulator's clock (epoch seconds), including any advance()."""
        return self.clock() + self._skew

    def advance(self, seconds: float) -> None:
        """Move the emulator's clock forward, e.g. to let callback queries expire."""
        self._skew += seconds

    # users and chats

    def user(
        self,
        user_id: int,
        first_name: str,
        language_code: str = "en",
        last_name: str | None = None,
        username: str | None = None,
    ) -> TelegramUser:
        """The scripted Telegram user with this id (created on first use)."""
        if user_id in self._users:
            return self._users[user_id]
        profile: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
        if last_name:
            profile["last_name"] = last_name
        if username:
            profile["username"] = username
        profile["language_code"] = language_code
        self._chats[user_id] = _Chat(user=profile, tokens=float(self.chat_burst), refilled=self.now())
        self._users[user_id] = TelegramUser(self, user_id)
        return self._users[user_id]

    def chat(self, chat_id: int) -> list[ChatMessage]:
        """Every live message in a chat, both directions, in order."""
        return [m for m in self._chats[chat_id].messages if not m.deleted]

    def track(self, application: Any) -> None:
        """Count a PTB Application's update processing as busy in wait_idle."""
        queue = application.update_queue
        if queue not in self._queues:
            self._queues.append(queue)

    def untrack(self, application: Any) -> None:
        """Stop tracking an Application."""
        with contextlib.suppress(ValueError):
            self._queues.remove(application.update_queue)

    # updates

    def push_update(self, kind: str, payload: dict[str, Any]) -> int:
        """Queue an update for getUpdates; returns its update_id (0 if allowed_updates filters it out)."""
        if self._allowed_updates and kind not in self._allowed_updates:
            return 0
        self._last_update_id += 1
        self._updates.append((self._last_update_id, {"update_id": self._last_update_id, kind: payload}))
        self._wake()
        return self._last_update_id

    def fetched(self, update_id: int) -> bool:
        """Whether the bot has received this update."""
        return update_id <= self._fetched_upto

    @property
    def pending_updates(self) -> int:
        """Updates queued but not yet delivered to the bot."""
        return sum(1 for update_id, _ in self._updates if update_id > self._fetched_upto)

    def _wake(self) -> None:
        self._wakeup.set()
        self._wakeup = asyncio.Event()

    def _touch(self) -> None:
        self._last_activity = asyncio.get_running_loop().time()
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_idle(self, quiet: float = 0.05, timeout: float = 10.0) -> None:  # noqa: ASYNC109 (part of the test-facing API)
        """Return once every queued update was fetched and processed and the API was quiet for `quiet` s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(
                    f"Bot API emulator not idle after {timeout}s: {self.pending_updates} updates not "
                    f"fetched, {self._in_flight} calls in flight"
                )
            try:
                for queue in list(self._queues):
                    await asyncio.wait_for(queue.join(), remaining)
            except TimeoutError:
                continue
            since = loop.time() - self._last_activity
            if self.pending_updates == 0 and self._in_flight == 0 and since >= quiet:
                return
            await asyncio.sleep(max(min(quiet - since, remaining), 0.005))

    async def wait_changed(self, timeout: float) -> None:  # noqa: ASYNC109 (part of the test-facing API)
        """Wait until any API call changes state or timeout passes."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    # HTTP

    async def _dispatch(self, request: web.Request) -> web.Response:
        path = request.path
        if path.startswith("/file/bot"):
            return self._serve_file(path.removeprefix("/file/bot"))
        match = re.fullmatch(r"/bot([^/]*)/([A-Za-z]+)", path)
        if match is None:
            return _error_response(ApiError(404, "Not Found"))
        if match.group(1) != self.token:
            return _error_response(ApiError(401, "Unauthorized"))
        entry = self._methods.get(match.group(2).lower())
        if entry is None:
            return _error_response(ApiError(404, "Not Found"))
        name, handler = entry
        self.requests[name] += 1
        busy = name != "getUpdates"
        if busy:
            self._in_flight += 1
            self._touch()
        try:
            params = _Params(await _read_params(request))
            result = await handler(params)
        except ApiError as error:
            self.errors[name] += 1
            return _error_response(error)
        finally:
            if busy:
                self._in_flight -= 1
                self._touch()
        return web.json_response({"ok": True, "result": result})

    def _serve_file(self, tail: str) -> web.Response:
        token, _, file_path = tail.partition("/")
        if token != self.token:
            return _error_response(ApiError(401, "Unauthorized"))
        for stored in self._files.values():
            if _file_path(stored) == file_path:
                return web.Response(body=stored.data, content_type=stored.mime_type)
        return _error_response(ApiError(404, "Not Found"))

    # methods

    async def _true(self, params: _Params) -> bool:
        return True

    async def _get_me(self, params: _Params) -> dict[str, Any]:
        return {
            **self.bot,
            "can_join_groups": False,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _get_updates(self, params: _Params) -> list[dict[str, Any]]:
        if self.webhook_url:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to "
                "delete the webhook first",
            )
        offset = params.int("offset", 0) or 0
        limit = min(max(params.int("limit", 100) or 100, 1), 100)
        timeout = max(params.float("timeout", 0.0), 0.0)
        allowed = params.json("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = [str(kind) for kind in allowed]
        if offset > 0:
            while self._updates and self._updates[0][0] < offset:
                self._updates.popleft()
        elif offset < 0:
            while len(self._updates) > -offset:
                self._updates.popleft()
        # Like Telegram, a newer getUpdates call ends an older one still waiting.
        self._poll_generation += 1
        generation = self._poll_generation
        self._wake()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            batch = [update for _, update in itertools.islice(self._updates, limit)]
            remaining = deadline - loop.time()
            if batch or remaining <= 0 or self._closing:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            if generation != self._poll_generation:
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
                )
        if batch:
            self._fetched_upto = max(self._fetched_upto, batch[-1]["update_id"])
            self._touch()
        return batch

    async def _delete_webhook(self, params: _Params) -> bool:
        self.webhook_url = ""
        if params.bool("drop_pending_updates"):
            self._updates.clear()
            self._fetched_upto = self._last_update_id
        return True

    async def _set_webhook(self, params: _Params) -> bool:
        url = params.str("url") or ""
        if url and not url.startswith("https://"):
            raise _bad("bad webhook: An HTTPS URL must be provided for webhook")
        self.webhook_url = url
        allowed = params.json("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = [str(kind) for kind in allowed]
        if params.bool("drop_pending_updates"):
            self._updates.clear()
            self._fetched_upto = self._last_update_id
        return True

    async def _get_webhook_info(self, params: _Params) -> dict[str, Any]:
        info: dict[str, Any] = {
            "url": self.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": self.pending_updates,
        }
        if self._allowed_updates:
            info["allowed_updates"] = self._allowed_updates
        return info

    def _commands_key(self, params: _Params) -> tuple[str, str]:
        scope = params.json("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), params.str("language_code") or ""

    async def _set_my_commands(self, params: _Params) -> bool:
        commands = params.json("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise _bad("can't parse commands JSON object")
        for command in commands:
            if not isinstance(command, dict) or not _COMMAND_NAME.fullmatch(str(command.get("command", ""))):
                raise _bad("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", "")).strip()) <= 256:
                raise _bad("command description is empty")
        self.commands[self._commands_key(params)] = [
            {"command": c["command"], "description": c["description"]} for c in commands
        ]
        return True

    async def _get_my_commands(self, params: _Params) -> list[dict[str, str]]:
        return self.commands.get(self._commands_key(params), [])

    async def _delete_my_commands(self, params: _Params) -> bool:
        self.commands.pop(self._commands_key(params), None)
        return True

    def _target_chat(self, params: _Params) -> _Chat:
        """The private chat a send goes to, refusing chats the user never started."""
        if "chat_id" not in params:
            raise _bad("chat_id is empty")
        try:
            chat_id = int(str(params.raw("chat_id")))
        except ValueError:
            raise _bad("chat not found") from None
        chat = self._chats.get(chat_id)
        if chat_id <= 0:
            raise _bad("chat not found")
        if chat is None or not chat.started:
            raise ApiError(403, CANT_INITIATE)
        if chat.blocked:
            raise ApiError(403, BLOCKED)
        return chat

    def _known_chat(self, params: _Params) -> _Chat:
        chat_id = params.int("chat_id")
        if chat_id is None:
            raise _bad("chat_id is empty")
        chat = self._chats.get(chat_id)
        if chat is None:
            raise _bad("chat not found")
        return chat

    def _check_flood(self, chat: _Chat) -> None:
        now = self.now()
        while self._sends and self._sends[0] <= now - 1:
            self._sends.popleft()
        retry = 0.0
        if self.global_per_second and len(self._sends) >= self.global_per_second:
            retry = self._sends[0] + 1 - now
        if self.chat_per_second:
            chat.tokens = min(float(self.chat_burst), chat.tokens + (now - chat.refilled) * self.chat_per_second)
            chat.refilled = now
            if chat.tokens < 1:
                retry = max(retry, (1 - chat.tokens) / self.chat_per_second)
        if retry > 0:
            seconds = max(math.ceil(retry), 1)
            raise ApiError(429, f"Too Many Requests: retry after {seconds}", retry_after=seconds)
        self._sends.append(now)
        chat.tokens -= 1

    def _deliver(self, chat: _Chat, message: ChatMessage, markup: _Markup) -> dict[str, Any]:
        if markup.keyboard is not None:
            message.reply_keyboard = markup.keyboard
            chat.reply_keyboard = markup.keyboard
            chat.one_time_keyboard = markup.one_time
        elif markup.remove:
            chat.reply_keyboard = None
        chat.messages.append(message)
        self._notify("sent", message)
        return self.message_api(message)

    def _notify(self, event: str, message: ChatMessage) -> None:
        for listener in list(self.listeners):
            listener(event, message)

    def _send(
        self,
        chat: _Chat,
        params: _Params,
        text: str,
        entities: list[dict[str, Any]],
        document: StoredFile | None = None,
    ) -> dict[str, Any]:
        """A new bot message in the chat, after the flood limit had its say."""
        markup = _markup(params)
        self._check_flood(chat)
        message = ChatMessage(
            message_id=chat.next_id(),
            chat_id=chat.user["id"],
            from_bot=True,
            date=int(self.now()),
            text=text,
            entities=entities,
            inline_keyboard=markup.inline,
            document=document,
        )
        return self._deliver(chat, message, markup)

    async def _send_message(self, params: _Params) -> dict[str, Any]:
        chat = self._target_chat(params)
        text, entities = _formatted(params, "text", "entities")
        if not text:
            raise _bad("message text is empty")
        if len(text) > TEXT_LIMIT:
            raise _bad("message is too long")
        return self._send(chat, params, text, entities)

    async def _send_document(self, params: _Params) -> dict[str, Any]:
        chat = self._target_chat(params)
        document = params.raw("document")
        if document is None or document == "":
            raise _bad("there is no document in the request")
        if isinstance(document, str):
            stored = self._files.get(document)
            if stored is None:
                raise _bad("wrong file identifier/HTTP URL specified")
        else:
            data = document.file.read()
            if not data:
                raise _bad("file must be non-empty")
            number = next(self._ids)
            stored = StoredFile(
                file_id=f"BQAC{number:08d}",
                file_unique_id=f"AgAD{number:06d}",
                file_name=document.filename or "document",
                mime_type=document.content_type or "application/octet-stream",
                data=data,
            )
            self._files[stored.file_id] = stored
        caption, entities = _formatted(params, "caption", "caption_entities")
        if len(caption) > CAPTION_LIMIT:
            raise _bad("message caption is too long")
        return self._send(chat, params, caption, entities, document=stored)

    def _editable(self, params: _Params) -> tuple[_Chat, ChatMessage]:
        if "inline_message_id" in params:
            raise _bad("MESSAGE_ID_INVALID")
        chat = self._known_chat(params)
        message_id = params.int("message_id")
        if message_id is None:
            raise _bad("message identifier is not specified")
        message = chat.find(message_id)
        if message is None:
            raise _bad("message to edit not found")
        if not message.from_bot:
            raise _bad("message can't be edited")
        return chat, message

    def _edited(self, message: ChatMessage) -> dict[str, Any]:
        message.edit_date = int(self.now())
        self._notify("edited", message)
        return self.message_api(message)

    async def _edit_message_text(self, params: _Params) -> dict[str, Any]:
        _, message = self._editable(params)
        if message.document is not None:
            raise _bad("there is no text in the message to edit")
        text, entities = _formatted(params, "text", "entities")
        if not text:
            raise _bad("message text is empty")
        if len(text) > TEXT_LIMIT:
            raise _bad("message is too long")
        # Like Telegram, omitting reply_markup removes the inline keyboard.
        keyboard = _inline_only(params)
        if (text, entities, keyboard) == (message.text, message.entities, message.inline_keyboard):
            raise ApiError(400, NOT_MODIFIED)
        message.text, message.entities, message.inline_keyboard = text, entities, keyboard
        return self._edited(message)

    async def _edit_message_caption(self, params: _Params) -> dict[str, Any]:
        _, message = self._editable(params)
        if message.document is None:
            raise _bad("there is no caption in the message to edit")
        caption, entities = _formatted(params, "caption", "caption_entities")
        if len(caption) > CAPTION_LIMIT:
            raise _bad("message caption is too long")
        keyboard = _inline_only(params)
        if (caption, entities, keyboard) == (message.text, message.entities, message.inline_keyboard):
            raise ApiError(400, NOT_MODIFIED)
        message.text, message.entities, message.inline_keyboard = caption, entities, keyboard
        return self._edited(message)

    async def _edit_message_reply_markup(self, params: _Params) -> dict[str, Any]:
        _, message = self._editable(params)
        keyboard = _inline_only(params)
        if keyboard == message.inline_keyboard:
            raise ApiError(400, NOT_MODIFIED)
        message.inline_keyboard = keyboard
        return self._edited(message)

    async def _delete_message(self, params: _Params) -> bool:
        chat = self._known_chat(params)
        message_id = params.int("message_id")
        message = chat.find(message_id) if message_id is not None else None
        if message is None:
            raise _bad("message to delete not found")
        message.deleted = True
        self._notify("deleted", message)
        return True

    async def _answer_callback_query(self, params: _Params) -> bool:
        query = self._queries.get(params.str("callback_query_id") or "")
        if query is None or query.answered or self.now() - query.created > self.callback_timeout:
            raise ApiError(400, QUERY_TOO_OLD)
        text = params.str("text")
        if text and len(text) > CALLBACK_ANSWER_LIMIT:
            raise _bad("MESSAGE_TOO_LONG")
        query.answered = True
        self._chats[query.chat_id].answers.append(
            CallbackAnswer(data=query.data, text=text, show_alert=params.bool("show_alert"), url=params.str("url"))
        )
        return True

    async def _get_file(self, params: _Params) -> dict[str, Any]:
        stored = self._files.get(params.str("file_id") or "")
        if stored is None:
            raise _bad("invalid file_id")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
            "file_path": _file_path(stored),
        }

    async def _send_chat_action(self, params: _Params) -> bool:
        self._target_chat(params)
        if params.str("action") not in _CHAT_ACTIONS:
            raise _bad("wrong parameter action in request")
        return True

    async def _get_chat(self, params: _Params) -> dict[str, Any]:
        chat = self._known_chat(params)
        return {
            **chat.api(),
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": True,
                "limited_gifts": True,
                "unique_gifts": True,
                "premium_subscription": True,
                "gifts_from_channels": True,
            },
        }

    # API shapes

    def message_api(self, message: ChatMessage) -> dict[str, Any]:
        """The Message object Telegram would return or deliver for this message."""
        chat = self._chats[message.chat_id]
        body: dict[str, Any] = {
            "message_id": message.message_id,
            "from": self.bot if message.from_bot else chat.user,
            "chat": chat.api(),
            "date": message.date,
        }
        if message.edit_date is not None:
            body["edit_date"] = message.edit_date
        if message.document is not None:
            body["document"] = message.document.to_api()
            if message.text:
                body["caption"] = message.text
            if message.entities:
                body["caption_entities"] = message.entities
        elif message.contact is not None:
            body["contact"] = message.contact
        else:
            body["text"] = message.text
            if message.entities:
                body["entities"] = message.entities
        if message.inline_keyboard:
            body["reply_markup"] = {"inline_keyboard": message.inline_keyboard}
        return body


def _file_path(stored: StoredFile) -> str:
    suffix = stored.file_name.rsplit(".", 1)[-1] if "." in stored.file_name else "bin"
    return f"documents/{stored.file_unique_id}.{suffix}"


def _error_response(error: ApiError) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": error.code, "description": error.description}
    if error.retry_after is not None:
        body["parameters"] = {"retry_after": error.retry_after}
    return web.json_response(body, status=error.code)


async def _read_params(request: web.Request) -> dict[str, Any]:
    values: dict[str, Any] = dict(request.query)
    if request.method != "POST" or not request.can_read_body:
        return values
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise _bad("can't parse JSON object") from None
        if isinstance(body, dict):
            values.update(body)
        return values
    values.update(await request.post())
    return values


# --- scripted users --------------------------------------------------------------------------------


class TelegramUser:
    """A person chatting with the bot: sends messages, taps buttons and reads what the bot shows."""

    def __init__(self, emulator: BotApiEmulator, user_id: int) -> None:
        self.emulator = emulator
        self.id = user_id

    @property
    def _chat(self) -> _Chat:
        return self.emulator._chats[self.id]

    @property
    def profile(self) -> dict[str, Any]:
        """The Telegram User object of this person."""
        return self._chat.user

    # reading

    @property
    def messages(self) -> list[ChatMessage]:
        """The bot's messages in this chat, in order, edits applied, deletions left out."""
        return [m for m in self._chat.messages if m.from_bot and not m.deleted]

    @property
    def last(self) -> ChatMessage:
        """The bot's most recent message here."""
        messages = self.messages
        if not messages:
            raise AssertionError(f"the bot has sent nothing to user {self.id}")
        return messages[-1]

    @property
    def documents(self) -> list[tuple[str, bytes]]:
        """Files the bot sent here, as (filename, bytes)."""
        return [(m.document.file_name, m.document.data) for m in self.messages if m.document is not None]

    @property
    def answers(self) -> list[CallbackAnswer]:
        """The bot's answers to this user's button taps, in order."""
        return list(self._chat.answers)

    @property
    def unanswered(self) -> list[str]:
        """Callback data of taps the bot never answered (the button would still be spinning)."""
        return [q.data for q in self.emulator._queries.values() if q.chat_id == self.id and not q.answered]

    @property
    def reply_keyboard(self) -> list[list[str]] | None:
        """Labels of the reply keyboard currently shown under the input field, if any."""
        rows = self._chat.reply_keyboard
        return None if rows is None else [[button["text"] for button in row] for row in rows]

    def block(self) -> None:
        """Block the bot: further sends fail with 403 like on Telegram."""
        self._chat.blocked = True

    async def wait_for(self, predicate: Callable[[TelegramUser], bool], timeout: float = 5.0) -> None:  # noqa: ASYNC109 (part of the test-facing API)
        """Wait until predicate(self) holds, e.g. for a message the bot sends later on its own."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate(self):
            remaining = deadline - loop.time()
            if remaining <= 0:
                last = self.messages[-1].text if self.messages else None
                raise AssertionError(f"condition not met within {timeout}s; last bot message: {last!r}")
            await self.emulator.wait_changed(min(remaining, 0.1))

    # acting

    async def send(self, text: str, *, wait: bool = True) -> ChatMessage:
        """Send a text message; '/command payload' carries a bot_command entity like on Telegram."""
        entities = [
            {"type": "bot_command", "offset": utf16_len(text[: m.start()]), "length": utf16_len(m.group())}
            for m in _BOT_COMMAND.finditer(text)
        ]
        return await self._post(text=text, entities=entities, wait=wait, what=f"message {text!r}")

    async def share_contact(self, phone: str, *, wait: bool = True) -> ChatMessage:
        """Share the own phone number, as Telegram's request_contact button does."""
        contact: dict[str, Any] = {
            "phone_number": phone,
            "first_name": self.profile["first_name"],
            "user_id": self.id,
        }
        if self.profile.get("last_name"):
            contact["last_name"] = self.profile["last_name"]
        return await self._post(contact=contact, wait=wait, what="contact")

    async def tap(self, label: str, *, wait: bool = True) -> None:
        """Tap the inline button with this label (or unique label substring) in the latest keyboard."""
        message = self._latest_keyboard()
        if message is None:
            raise AssertionError(f"no bot message with an inline keyboard; last: {self._last_text()!r}")
        buttons = [button for row in message.inline_keyboard or [] for button in row]
        matches = [b for b in buttons if b["text"] == label] or [b for b in buttons if label in b["text"]]
        if len(matches) != 1:
            problem = "no button" if not matches else f"{len(matches)} buttons"
            raise AssertionError(
                f"{problem} labelled {label!r} in message {message.message_id} ({message.text!r}); "
                f"available: {message.buttons}"
            )
        data = matches[0].get("callback_data")
        if data is None:
            raise AssertionError(f"button {matches[0]['text']!r} has no callback_data: {matches[0]}")
        await self._callback(message, data, wait)

    async def tap_data(self, data: str, message_id: int | None = None, *, wait: bool = True) -> None:
        """Send a callback query with arbitrary (possibly forged) data from a bot message."""
        if message_id is None:
            message = self._latest_keyboard() or (self.messages[-1] if self.messages else None)
        else:
            message = self._chat.find(message_id)
        if message is None or not message.from_bot:
            raise AssertionError(f"no bot message {message_id} to tap in chat {self.id}")
        await self._callback(message, data, wait)

    async def tap_reply(self, label: str, phone: str | None = None, *, wait: bool = True) -> ChatMessage:
        """Press a reply-keyboard button: sends its text, or the contact for a request_contact button."""
        rows = self._chat.reply_keyboard
        if rows is None:
            raise AssertionError(f"no reply keyboard shown; last bot message: {self._last_text()!r}")
        buttons = [button for row in rows for button in row]
        matches = [b for b in buttons if b["text"] == label] or [b for b in buttons if label in b["text"]]
        if len(matches) != 1:
            raise AssertionError(f"no single reply button {label!r}; available: {self.reply_keyboard}")
        if matches[0].get("request_contact") and phone is None:
            raise AssertionError(f"reply button {label!r} shares the contact: pass phone=")
        if self._chat.one_time_keyboard:
            self._chat.reply_keyboard = None
        if matches[0].get("request_contact") and phone is not None:
            return await self.share_contact(phone, wait=wait)
        return await self.send(matches[0]["text"], wait=wait)

    # internals

    def _last_text(self) -> str | None:
        return self.messages[-1].text if self.messages else None

    def _latest_keyboard(self) -> ChatMessage | None:
        return next((m for m in reversed(self.messages) if m.inline_keyboard), None)

    async def _post(self, *, wait: bool, what: str, **content: Any) -> ChatMessage:
        emulator, chat = self.emulator, self._chat
        chat.started = True
        chat.blocked = False
        message = ChatMessage(
            message_id=chat.next_id(),
            chat_id=self.id,
            from_bot=False,
            date=int(emulator.now()),
            text=content.get("text", ""),
            entities=content.get("entities", []),
            contact=content.get("contact"),
        )
        chat.messages.append(message)
        update_id = emulator.push_update("message", emulator.message_api(message))
        if wait:
            await self._settle(update_id, what)
        return message

    async def _callback(self, message: ChatMessage, data: str, wait: bool) -> None:
        emulator = self.emulator
        query_id = str(next(emulator._ids) * 7919 + self.id)
        emulator._queries[query_id] = _Query(self.id, message.message_id, data, emulator.now())
        payload = {
            "id": query_id,
            "from": self.profile,
            "message": emulator.message_api(message),
            "chat_instance": str(abs(hash((emulator.token, self.id))) % 10**18),
            "data": data,
        }
        update_id = emulator.push_update("callback_query", payload)
        if wait:
            await self._settle(update_id, f"tap {data!r}")

    async def _settle(self, update_id: int, what: str) -> None:
        emulator = self.emulator
        loop = asyncio.get_running_loop()
        deadline = loop.time() + emulator.action_timeout
        while update_id and not emulator.fetched(update_id):
            if loop.time() >= deadline:
                raise AssertionError(
                    f"the bot never fetched the update for {what} within {emulator.action_timeout}s: "
                    f"is an Application polling {emulator.base_url}?"
                )
            await emulator.wait_changed(0.05)
        try:
            await emulator.wait_idle(emulator.quiet, max(deadline - loop.time(), 0.01))
        except TimeoutError as error:
            raise AssertionError(f"the bot was still busy after {what}: {error}") from None
