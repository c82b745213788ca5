"""Text people type, made safe to store, show and write into calendars (XML and iCalendar) on arrival."""

from __future__ import annotations

import re
import unicodedata

# Unicode noncharacters (U+FDD0..U+FDEF and the last two code points of every plane), lone surrogates,
# and controls: C0 except tab and newline, DEL, C1. Servers echo them into XML, which then no longer parses.
_NEVER = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef"
    + "".join(f"{chr(plane << 16 | 0xFFFE)}{chr(plane << 16 | 0xFFFF)}" for plane in range(17))
    + "]"
)
# In names only: direction overrides and isolates, marks, and zero-width characters, which can make a
# name display as something else ("spoofing") or look empty.
_NAME_ONLY = re.compile("[\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")


def clean_text(text: str, *, name: bool = False) -> str:
    """`text` without characters that have no place in what a person typed; `name` also drops invisible ones.

    Line breaks become "\\n"; everything else a person can see (emoji, accents, any script) is kept.
    """
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _NEVER.sub("", text)
    if name:
        text = _NAME_ONLY.sub("", text)
    return text
