"""Texts and buttons of the waiting list: the offer of a freed time and its outcomes (HTML parse mode)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from html import escape

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.dialogs.render import appointment_lines, day_label, when
from bot.dialogs.specialist import Message
from bot.i18n import gettext_for
from scheduling.config import Practice, local
from scheduling.db import WaitingRow
from scheduling.waitlist import OFFER_MINUTES, OFFERED


def offer(practice: Practice, entry: WaitingRow, lang: str) -> Message:
    """A freed time, kept for the client for a few minutes, with Take it / No, thanks."""
    _ = gettext_for(lang)
    assert entry.offer_start is not None
    heading = (
        _("An earlier time for your appointment has freed up:")
        if entry.appointment_id is not None
        else _("A time you were waiting for has freed up:")
    )
    facts = appointment_lines(
        _,
        lang,
        practice,
        service_id=entry.service_id,
        location_id=entry.location_id,
        specialist_id=entry.offer_specialist,
        start=entry.offer_start,
        channel=None,
    )
    kept = _("It is kept for you for {minutes} minutes.").format(minutes=OFFER_MINUTES)
    take = _("Move my appointment here") if entry.appointment_id is not None else _("Take it")
    markup = InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(take, callback_data=f"q|y|{entry.id}")],
            [InlineKeyboardButton(_("No, thanks"), callback_data=f"q|n|{entry.id}")],
        ]
    )
    return Message("\n".join([heading, "", *facts, "", kept]), markup)


def lapsed(lang: str) -> str:
    _ = gettext_for(lang)
    return _("This offer has lapsed. I keep looking for an earlier time.")


def gone(lang: str) -> str:
    _ = gettext_for(lang)
    return _("Sorry, this time is no longer available. I keep looking for an earlier time.")


def passed(lang: str) -> str:
    _ = gettext_for(lang)
    return _("All right. I keep looking for an earlier time.")


def taken(lang: str, moving: bool) -> str:
    _ = gettext_for(lang)
    if moving:
        return _(
            "Your request to move the appointment has been sent. Until the specialist approves it, "
            "your appointment stays at its present time."
        )
    return _("Your request has been sent. The specialist will reply soon; I will let you know here.")


def joined(lang: str, first: date, last: date) -> str:
    _ = gettext_for(lang)
    return _("I will tell you here if a time frees up between {first} and {last}.").format(
        first=escape(day_label(lang, first)), last=escape(day_label(lang, last))
    )


def joined_earlier(lang: str) -> str:
    _ = gettext_for(lang)
    return _("I will tell you here if an earlier time frees up.")


def waiting_lines(practice: Practice, entries: Sequence[WaitingRow], lang: str) -> list[str]:
    """The client's open waits for an earlier time, for staff (the appointment card): what, and any offer held."""
    _ = gettext_for(lang)
    if not entries:
        return []
    lines = [_("Waiting list:")]
    for entry in entries:
        service = escape(local(practice.service_by_id[entry.service_id].name, lang))
        if entry.appointment_id is not None:
            what = _("{service}: an earlier time for #{id}").format(service=service, id=entry.appointment_id)
        else:
            what = _("{service}: a time from {first} to {last}").format(
                service=service,
                first=escape(day_label(lang, entry.first_day)),
                last=escape(day_label(lang, entry.last_day)),
            )
        lines.append("· " + what)
        if entry.status == OFFERED and entry.offer_start is not None:
            offered = when(lang, practice, entry.location_id, entry.offer_start)
            lines.append("  " + _("offered {when}, waiting for the client's answer").format(when=escape(offered)))
    return lines
