"""Client text is cleaned on arrival: nothing an XML parser chokes on, nothing invisible in names."""

from __future__ import annotations

from scheduling.contact import clean_name
from scheduling.text import clean_text


def test_noncharacters_controls_and_nul_go_tabs_newlines_and_emoji_stay() -> None:
    typed = "a\ufffeb\uffff\x00c\x07d\x85e\u009ff\tg\r\nh \U0001f469\u200d\U0001f4bb ąż\U0010fffe"
    assert clean_text(typed) == "abcdef\tg\nh \U0001f469\u200d\U0001f4bb ąż"


def test_names_lose_bidi_overrides_and_zero_width_characters() -> None:
    assert clean_name("Ola\u202e kawoN\u200b\u2066") == "Ola kawoN"
    assert clean_name("\u200b\u200b") is None  # nothing visible left
    assert clean_text("note \u202e", name=False) == "note \u202e"  # a note may quote right-to-left text
