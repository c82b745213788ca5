"""The calendar sign-in's screens: the link, the choice of calendars, and the result."""

from __future__ import annotations

from collections.abc import Callable
from html import escape

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from providers.connections import Choice
from scheduling.db import CalendarConnectionRow

PROVIDER_NAMES = {"google": "Google", "microsoft": "Microsoft"}  # brand names: the same in every language

Screen = tuple[str, InlineKeyboardMarkup | None]


def sign_in(_: Callable[[str], str], provider: str, url: str, paste: bool) -> Screen:
    """The link to the provider's sign-in page, and what to do afterwards."""
    name = PROVIDER_NAMES[provider]
    text = _("Sign in to {provider} and allow the bot to use your calendar.").format(provider=name)
    if paste:
        text += "\n\n" + _(
            "Afterwards your browser shows a page that does not load. Copy that page's whole address "
            "and send it to me here."
        )
    button = InlineKeyboardButton(_("Sign in with {provider}").format(provider=name), url=url)
    return text, InlineKeyboardMarkup([[button]])


def choosing(_: Callable[[str], str], row: CalendarConnectionRow) -> Screen:
    """Which calendar takes the bookings; then which calendars block time."""
    found = row.calendars.get("found", [])
    booking = row.calendars.get("booking")
    if booking is None:
        text = _("Signed in as {account}. Which calendar should bookings go to?").format(account=escape(row.account))
        rows = [
            [InlineKeyboardButton(c["name"], callback_data=f"c|b|{i}")] for i, c in enumerate(found) if c["writable"]
        ]
        return text, InlineKeyboardMarkup(rows)
    busy = set(row.calendars.get("busy", []))
    name = next(c["name"] for c in found if c["id"] == booking)
    text = _("Bookings go to {calendar}. Which calendars block your time? Tap to switch one on or off.").format(
        calendar=escape(name)
    )
    rows = [
        [InlineKeyboardButton(("✓ " if c["id"] in busy else "") + c["name"], callback_data=f"c|t|{i}")]
        for i, c in enumerate(found)
        if c["id"] != booking
    ]
    rows.append([InlineKeyboardButton(_("Done"), callback_data="c|d")])
    return text, InlineKeyboardMarkup(rows)


def connected(_: Callable[[str], str], choice: Choice) -> str:
    names = ", ".join(escape(c.name) for c in (choice.booking, *choice.busy))
    return _("Connected. Bookings go to {calendar}; busy time comes from {calendars}.").format(
        calendar=escape(choice.booking.name), calendars=names
    )


def failed(_: Callable[[str], str], reason: str) -> str:
    return _("Signing in did not work ({reason}). Send /connect to try again.").format(reason=escape(reason))
