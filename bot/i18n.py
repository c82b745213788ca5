"""Translations: gettext catalogs in locales/<lang>/LC_MESSAGES/bookingbot.po, read with Babel."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LOCALES_DIR = Path(__file__).resolve().parents[1] / "locales"
DOMAIN = "bookingbot"


def available() -> list[str]:
    """Languages with a catalog, plus English (the source language)."""
    found = {p.parent.parent.name for p in LOCALES_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.po")}
    return sorted(found | {"en"})


@cache
def translations(lang: str) -> NullTranslations:
    """The catalog for a language code such as 'pl' or 'de-AT'; English text when there is none."""
    po = LOCALES_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not po.exists():
        return NullTranslations()
    import io

    with po.open("rb") as f:
        catalog = read_po(f, locale=lang)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(fp=buf, domain=DOMAIN)


def pick_language(language_code: str | None, default: str) -> str:
    """The best catalog for Telegram's language_code, falling back to the practice default."""
    langs = available()
    if language_code:
        base = language_code.split("-")[0].lower()
        if base in langs:
            return base
    return default if default in langs else "en"


def gettext_for(lang: str):
    """The `_` function for one language."""
    return translations(lang).gettext
