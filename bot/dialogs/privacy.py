"""The client's /privacy screens: what is kept, the export, withdrawing consent, erasure."""

from __future__ import annotations

import json
from datetime import datetime
from html import escape
from typing import Any

from babel.dates import format_date
from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.dialogs.render import when
from bot.dialogs.specialist import Message
from bot.i18n import gettext_for
from scheduling.config import Practice, local
from scheduling.model import ACTIVE_STATUSES
from scheduling.store import AppointmentRow
from scheduling.store_privacy import HEALTH, TERMS

EXPORT_FILE = "my-data.json"


def _button(label: str, verb: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(label, callback_data=f"y|{verb}")


def _date(lang: str, iso: str) -> str:
    return format_date(datetime.fromisoformat(iso).date(), "medium", locale=lang)


def overview_upcoming(data: dict[str, Any], now: datetime) -> int:
    """How many of the client's appointments (in their export) are still to come."""
    return sum(
        1 for a in data["appointments"] if a["status"] in ACTIVE_STATUSES and datetime.fromisoformat(a["end"]) > now
    )


def overview(practice: Practice, data: dict[str, Any], now: datetime, lang: str) -> Message:
    """What the practice keeps about the client (from their export), and what they may do about it."""
    _ = gettext_for(lang)
    client = data["client"]
    appts = data["appointments"]
    upcoming = overview_upcoming(data, now)
    notes = sum(1 for a in appts if a["note"])
    contact = ", ".join(escape(x) for x in (client["name"], client["phone"], client["email"]) if x)
    lines = [
        _("What {practice} keeps about you:").format(practice=escape(local(practice.practice.name, lang))),
        "",
        "• " + (_("Your details: {contact}").format(contact=contact) if contact else _("No contact details.")),
        "• "
        + _("Appointments: {count} ({upcoming} upcoming), your notes in {notes} of them").format(
            count=len(appts), upcoming=upcoming, notes=notes
        ),
        "• "
        + _("Waiting to be delivered: {messages} message(s), {emails} e-mail(s)").format(
            messages=len(data["messages"]), emails=len(data["emails_waiting"])
        ),
        "• " + _("Waiting-list entries: {count}").format(count=len(data["waiting_list"])),
    ]
    given = {c["kind"]: c for c in data["consents"] if c["withdrawn"] is None}
    for kind, label in ((TERMS, _("Terms and privacy policy")), (HEALTH, _("Health information in your notes"))):
        if kind in given:
            lines.append(
                "• "
                + _("{consent}: agreed on {date} (version {version})").format(
                    consent=label, date=_date(lang, given[kind]["given"]), version=escape(given[kind]["policy_version"])
                )
            )
    lines += [
        "",
        _(
            "Calendars and calendar feeds show the specialist only the service and your initials. Messages are "
            "deleted once delivered, unfinished bookings after 7 days."
        ),
    ]
    months = practice.privacy.retention_months
    if months:
        lines.append(_("Everything is erased {months} months after your last visit.").format(months=months))
    if practice.practice.privacy_url:
        lines.append(_("Privacy policy: {url}").format(url=escape(practice.practice.privacy_url)))
    rows = [[_button(_("Download my data"), "export")]]
    if given:
        rows.append([_button(_("Withdraw my consent"), "withdraw")])
    rows.append([_button(_("Erase my data"), "erase")])
    return Message("\n".join(lines), InlineKeyboardMarkup(rows))


def export_file(data: dict[str, Any]) -> bytes:
    """The export as the JSON file the client receives."""
    return json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8")


def export_caption(lang: str) -> str:
    _ = gettext_for(lang)
    return _("Everything the practice keeps about you, as a JSON file.")


def confirm_withdraw(lang: str) -> Message:
    _ = gettext_for(lang)
    text = _(
        "Withdraw your consent? The notes you wrote (health information) are deleted now. Your appointments "
        "stay; to book again you will be asked to agree once more. To delete everything, choose Erase my data."
    )
    return Message(text, InlineKeyboardMarkup([[_button(_("Withdraw"), "withdraw!")], [_button(_("Back"), "back")]]))


def withdrawn(lang: str, notes: int) -> str:
    _ = gettext_for(lang)
    return _("Your consent is withdrawn; {notes} note(s) deleted. Send /privacy to see what is kept.").format(
        notes=notes
    )


def confirm_erase(lang: str, upcoming: int) -> Message:
    _ = gettext_for(lang)
    text = _(
        "Erase your data? Your upcoming appointments ({count}) are cancelled and the specialist is told. "
        "Your name, phone, e-mail, notes and messages are deleted here and from the specialists' calendars; "
        "only anonymous records of past visits stay. This cannot be undone."
    ).format(count=upcoming)
    rows = [[_button(_("Erase everything"), "erase!")], [_button(_("Back"), "back")]]
    return Message(text, InlineKeyboardMarkup(rows))


def erased_text(lang: str, cancelled: int) -> str:
    _ = gettext_for(lang)
    return _(
        "Your data is erased; {count} upcoming appointment(s) cancelled. If you write to this bot again, "
        "it knows nothing about you."
    ).format(count=cancelled)


def cancelled_for_specialist(practice: Practice, appt: AppointmentRow, lang: str) -> str:
    """A visit cancelled because its client asked for their data to be erased (they are not named)."""
    _ = gettext_for(lang)
    moment = when(lang, practice, appt.location_id, appt.start)
    return _(
        "A client asked for their data to be erased: {service} on {when} is cancelled and the time is free again."
    ).format(service=escape(local(practice.service_by_id[appt.service_id].name, lang)), when=moment)


def with_erase_button(msg: Message, client_id: int, lang: str) -> Message:
    """A client record as an admin sees it: with the button that erases the client's data."""
    _ = gettext_for(lang)
    rows = [list(row) for row in msg.markup.inline_keyboard] if msg.markup else []
    rows.append([InlineKeyboardButton(_("Erase this client's data"), callback_data=f"k|er|{client_id}")])
    return Message(msg.text, InlineKeyboardMarkup(rows))


def confirm_erase_client(client_id: int, upcoming: int, lang: str) -> Message:
    _ = gettext_for(lang)
    text = _(
        "Erase this client's data? Their upcoming appointments ({count}) are cancelled and their specialists "
        "told; their name, phone, e-mail, notes, the staff's notes and messages are deleted here and from the "
        "calendars; anonymous records of past visits stay. This cannot be undone."
    ).format(count=upcoming)
    rows = [[InlineKeyboardButton(_("Erase everything"), callback_data=f"k|ery|{client_id}")]]
    return Message(text, InlineKeyboardMarkup(rows))


def client_erased(cancelled: int, lang: str) -> str:
    _ = gettext_for(lang)
    return _("The client's data is erased; {count} upcoming appointment(s) cancelled.").format(count=cancelled)
