"""Translations: every text of the code is translated in every catalog, placeholders intact."""

from __future__ import annotations

import re

import pytest
from babel.messages.pofile import read_po

from bot.i18n import LANGUAGES, LOCALES_DIR, extract, gettext_for, pick_language
from tests.fixtures.bot import Bot

PLACEHOLDER = re.compile(r"\{(\w+)\}")


@pytest.mark.parametrize("lang", LANGUAGES)
def test_catalog_translates_every_text_of_the_code(lang: str) -> None:
    with (LOCALES_DIR / lang / "LC_MESSAGES" / "bookingbot.po").open("rb") as f:
        catalog = read_po(f, locale=lang)
    missing, broken = [], []
    for message in extract():
        if not message.id:
            continue
        translated = catalog.get(message.id)
        if translated is None or not translated.string or translated.fuzzy:
            missing.append(message.id)
        elif sorted(PLACEHOLDER.findall(translated.string)) != sorted(PLACEHOLDER.findall(message.id)):
            broken.append(message.id)
        elif "<" in translated.string and "<" not in message.id:
            broken.append(message.id)  # parse_mode is HTML: a stray tag breaks the message
    assert missing == [], f"{lang}: untranslated (run `python -m bot.i18n`, then translate)"
    assert broken == [], f"{lang}: placeholders or markup changed"


def test_language_choice_falls_back_to_the_practice_default() -> None:
    assert pick_language("pl", "en") == "pl"
    assert pick_language("de-AT", "en") == "de"
    assert pick_language("ja", "fi") == "fi"
    assert pick_language(None, "xx") == "en"
    assert gettext_for("de")("Cancel") != "Cancel"


async def test_a_polish_client_is_answered_in_polish(bot: Bot) -> None:
    client = bot.user(7001, "Kuba", lang="pl")
    await client.send("/start")
    expected = gettext_for("pl")
    assert client.messages[0].text == expected("Hello! I book appointments at {practice}.").format(
        practice="Harbour Counselling"
    )
    assert client.last.text == expected("Where would you like to meet?")
    assert expected("Cancel") in [b for row in client.last.buttons for b in row]
