"""Client contact details: what counts as a usable name, phone number and e-mail address."""

from __future__ import annotations

import re

import phonenumbers

from scheduling.text import clean_text

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]{2,}$")


def clean_name(text: str) -> str | None:
    """The name as typed, trimmed and single-spaced; None if it cannot be a person's name."""
    name = " ".join(clean_text(text, name=True).split())
    if not 2 <= len(name) <= 100 or name.startswith("/") or not any(c.isalpha() for c in name):
        return None
    return name


def normalize_phone(text: str, country: str = "") -> str | None:
    """The number in E.164 form (+48601234567), or None if it is not a valid phone number."""
    raw = text.strip()
    # Telegram shares numbers in international form without the plus sign.
    candidates = [raw, "+" + raw] if raw[:1].isdigit() else [raw]
    for candidate in candidates:
        try:
            number = phonenumbers.parse(candidate, country or None)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return None


def clean_email(text: str) -> str | None:
    """The address trimmed, or None if it does not look like one."""
    email = text.strip()
    return email if len(email) <= 254 and _EMAIL.match(email) else None
