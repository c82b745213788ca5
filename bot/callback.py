"""Callback data read back defensively: our buttons write it, but any client can send any 64 bytes.

Every field is length-capped and every number is plain ASCII digits within what a database integer
holds, so forged data is refused like a stale button and never reaches int(), the database or
datetime with a value they cannot take (it once raised OverflowError).
"""

from __future__ import annotations

import re

MAX_BYTES = 64  # Telegram's own limit for callback_data
MAX_FIELD = 40  # the longest field our buttons write is an identifier of the practice file (32)
MAX_FIELDS = 6
# A signed 32-bit integer: PostgreSQL's INTEGER columns (ids) take no more, and minutes since 1970
# up to it are a valid datetime.
MAX_NUMBER = 2**31 - 1
_DIGITS = re.compile(r"[0-9]{1,10}")


def fields(data: str | None) -> list[str] | None:
    """The data's `|`-separated fields, or None when it is longer than any button of ours could write."""
    if not data or len(data.encode("utf-8")) > MAX_BYTES:
        return None
    parts = data.split("|")
    if len(parts) > MAX_FIELDS or any(len(p) > MAX_FIELD for p in parts):
        return None
    return parts


def number(text: str | None) -> int | None:
    """A non-negative id or count our buttons wrote, or None (not ASCII digits, or out of range)."""
    if text is None or not _DIGITS.fullmatch(text):
        return None
    value = int(text)
    return value if value <= MAX_NUMBER else None


def numbers(texts: list[str], count: int) -> list[int] | None:
    """The first `count` fields as numbers, or None when any is missing or not a number."""
    if len(texts) < count:
        return None
    found = [number(t) for t in texts[:count]]
    return None if any(n is None for n in found) else [n for n in found if n is not None]
