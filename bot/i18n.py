"""Translations: gettext catalogs in locales/<lang>/LC_MESSAGES/bookingbot.po, read with Babel.

`python -m bot.i18n` (in a checkout) extracts the texts and merges them into the catalogs.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po
from babel.support import NullTranslations, Translations

PACKAGE = Path(__file__).resolve().parent
ROOT = PACKAGE.parent
# The catalogs are edited at the top of a checkout; an installed package carries a copy (setup.py).
SOURCE_LOCALES = ROOT / "locales"
LOCALES_DIR = PACKAGE / "locales" if (PACKAGE / "locales").is_dir() else SOURCE_LOCALES
DOMAIN = "bookingbot"
LANGUAGES = ("pl", "de", "lt", "fi")  # besides English, the source language


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


def gettext_for(lang: str) -> Callable[[str], str]:
    """The `_` function for one language."""
    return translations(lang).gettext


def extract() -> Catalog:
    """Every user-facing text in the code, as a template catalog."""
    template = Catalog(project="bookingbot", domain=DOMAIN)
    for package in ("bot", "scheduling"):
        for filename, lineno, message, comments, context in extract_from_dir(
            ROOT / package, method_map=[("**.py", "python")], keywords={"_": None, "gettext": None}
        ):
            template.add(
                message, locations=[(f"{package}/{filename}", lineno)], auto_comments=comments, context=context
            )
    return template


def update_catalogs() -> None:
    """Write locales/bookingbot.pot and merge new texts into every language's .po file."""
    template = extract()
    SOURCE_LOCALES.mkdir(exist_ok=True)
    with (SOURCE_LOCALES / f"{DOMAIN}.pot").open("wb") as f:
        write_po(f, template, omit_header=False, sort_output=True)
    for lang in LANGUAGES:
        po = SOURCE_LOCALES / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
        po.parent.mkdir(parents=True, exist_ok=True)
        if po.exists():
            with po.open("rb") as f:
                catalog = read_po(f, locale=lang)
        else:
            catalog = Catalog(locale=lang, project="bookingbot", domain=DOMAIN)
        catalog.update(template, no_fuzzy_matching=True)
        with po.open("wb") as f:
            write_po(f, catalog, sort_output=True, ignore_obsolete=True)


if __name__ == "__main__":
    update_catalogs()
    sys.exit(0)
