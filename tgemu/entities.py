"""Telegram's message-entity parsers: its HTML subset and MarkdownV2, with Telegram's error messages."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from tgemu.errors import bad_request


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
            raise bad_request(f'can\'t parse entities: Unclosed start tag "{tag}" at byte offset {begin}')
        if source[pos] == ">":
            return attrs, pos + 1
        start = pos
        while pos < size and (source[pos].isalnum() or source[pos] in "-_"):
            pos += 1
        name = source[start:pos].lower()
        if not name:
            raise bad_request(f'can\'t parse entities: Empty attribute name in the tag "{tag}" at byte offset {begin}')
        while pos < size and source[pos].isspace():
            pos += 1
        if pos < size and source[pos] != "=":
            if tag == "blockquote" and name == "expandable":
                attrs[name] = ""
                continue
            raise bad_request(
                "can't parse entities: Expected equal sign in declaration of an attribute of the tag "
                f'"{tag}" at byte offset {begin}'
            )
        pos += 1
        while pos < size and source[pos].isspace():
            pos += 1
        if pos >= size:
            raise bad_request(f'can\'t parse entities: Unclosed start tag "{tag}" at byte offset {begin}')
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
                raise bad_request(f"can't parse entities: Unclosed start tag at byte offset {begin}")
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
                raise bad_request(f"can't parse entities: Unexpected end tag at byte offset {begin}")
            while end < size and source[end].isspace():
                end += 1
            if end >= size or source[end] != ">":
                raise bad_request(f"can't parse entities: Unclosed end tag at byte offset {begin}")
            tag = stack.pop()
            if name and name != tag.name:
                raise bad_request(
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
            raise bad_request(f"can't parse entities: Unclosed start tag at byte offset {begin}")
        if name not in _HTML_TAGS:
            raise bad_request(f'can\'t parse entities: Unsupported start tag "{name}" at byte offset {begin}')
        attrs, pos = _parse_attributes(source, end, name, begin)
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise bad_request(f'can\'t parse entities: Tag "span" must have class "tg-spoiler" at byte offset {begin}')
        stack.append(_OpenTag(name, attrs, offset))
    if stack:
        raise bad_request(f"can't parse entities: Can't find end tag corresponding to start tag \"{stack[-1].name}\"")
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def strip_entities(text: str, entities: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
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
                raise bad_request(f"can't parse entities: Can't find end of the entity starting at byte offset {begin}")
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
                raise bad_request(
                    f"can't parse entities: Can't find end of the entity starting at byte offset {link_begin}"
                )
            url = re.sub(r"\\(.)", r"\1", match.group(1))
            if offset > start and url:
                entities.append({"type": "text_link", "offset": start, "length": offset - start, "url": url})
            pos += 1 + match.end()
            continue
        if char in _MD_RESERVED:
            raise bad_request(
                f"can't parse entities: Character '{char}' is reserved and must be escaped with the preceding '\\'"
            )
        emit(char)
        pos += 1
    if stack:
        raise bad_request(f"can't parse entities: Can't find end of the entity starting at byte offset {stack[-1][3]}")
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities
