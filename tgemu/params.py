"""Reading a Bot API request: typed parameters, reply markup and formatted text."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from tgemu.entities import parse_html, parse_markdown_v2, strip_entities
from tgemu.errors import CALLBACK_DATA_LIMIT, bad_request

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

_BUTTON_URL = re.compile(r"(https?|tg)://\S+")


class Params:
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
            raise bad_request(f'field "{name}" must be of type Integer') from None

    def float(self, name: str, default: float) -> float:
        value = self.values.get(name)
        if value in (None, ""):
            return default
        try:
            return float(value)
        except (TypeError, ValueError):
            raise bad_request(f'field "{name}" must be of type Number') from None

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
            raise bad_request(f"can't parse {name} JSON object") from None


def _inline_keyboard(markup: dict[str, Any]) -> list[list[dict[str, Any]]]:
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request('field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays')
    for row in rows:
        for button in row:
            if not isinstance(button, dict):
                raise bad_request("can't parse inline keyboard button: InlineKeyboardButton must be an Object")
            if not isinstance(button.get("text"), str) or not button["text"]:
                raise bad_request("can't parse inline keyboard button: Text must be non-empty")
            actions = [name for name in _INLINE_ACTIONS if button.get(name) is not None]
            if not actions:
                raise bad_request(
                    "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
                )
            if len(actions) > 1:
                raise bad_request(
                    "can't parse inline keyboard button: InlineKeyboardButton must have exactly one optional field"
                )
            data = button.get("callback_data")
            if data is not None and (not isinstance(data, str) or not 1 <= len(data.encode()) <= CALLBACK_DATA_LIMIT):
                raise bad_request("BUTTON_DATA_INVALID")
            url = button.get("url")
            if url is not None and (not isinstance(url, str) or not _BUTTON_URL.fullmatch(url)):
                raise bad_request("BUTTON_URL_INVALID")
    return rows


def _reply_keyboard(markup: dict[str, Any]) -> list[list[dict[str, Any]]]:
    rows = markup["keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request('field "keyboard" of the ReplyKeyboardMarkup must be an Array of Arrays')
    normalised = []
    for row in rows:
        buttons = []
        for button in row:
            entry = {"text": button} if isinstance(button, str) else button
            if not isinstance(entry, dict) or not isinstance(entry.get("text"), str) or not entry["text"]:
                raise bad_request("can't parse keyboard button: Text must be non-empty")
            buttons.append(entry)
        normalised.append(buttons)
    return normalised


@dataclass
class Markup:
    inline: list[list[dict[str, Any]]] | None = None
    keyboard: list[list[dict[str, Any]]] | None = None
    one_time: bool = False
    remove: bool = False


def markup_of(params: Params) -> Markup:
    raw = params.json("reply_markup")
    if raw in (None, ""):
        return Markup()
    if not isinstance(raw, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in raw:
        return Markup(inline=_inline_keyboard(raw))
    if "keyboard" in raw:
        return Markup(keyboard=_reply_keyboard(raw), one_time=bool(raw.get("one_time_keyboard")))
    if raw.get("remove_keyboard") is True:
        return Markup(remove=True)
    if raw.get("force_reply") is True:
        return Markup()
    raise bad_request("can't parse reply keyboard markup JSON object")


def inline_only(params: Params) -> list[list[dict[str, Any]]] | None:
    markup = markup_of(params)
    if markup.keyboard is not None or markup.remove:
        raise bad_request("inline keyboard expected")
    return markup.inline


def formatted(params: Params, text_field: str, entities_field: str) -> tuple[str, list[dict[str, Any]]]:
    text = params.str(text_field) or ""
    mode = params.str("parse_mode") or ""
    entities_raw = params.json(entities_field)
    if entities_raw:
        if not isinstance(entities_raw, list):
            raise bad_request(f"can't parse {entities_field} JSON object")
        return strip_entities(text, entities_raw)
    if mode == "":
        return strip_entities(text, [])
    if mode.lower() == "html":
        return strip_entities(*parse_html(text))
    if mode.lower() in ("markdown", "markdownv2"):
        return strip_entities(*parse_markdown_v2(text))
    raise bad_request(f"unsupported parse_mode {mode}")
