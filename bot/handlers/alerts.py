"""Staff answers to calendar incidents: restore the vanished events, or accept them as cancelled."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.ext import ContextTypes

from bot import callback, notify
from bot.deps import deps
from bot.dialogs import alerts
from bot.handlers.common import answer, edit_quietly
from bot.i18n import gettext_for
from scheduling.calendar_sync import IncidentClosed

log = logging.getLogger(__name__)


def _parse(data: str) -> tuple[str, int] | None:
    """('r', 7) from 'a|r|7'; None for anything our buttons never carry."""
    parts = callback.fields(data)
    if parts is None or len(parts) != 3 or parts[0] != "a" or parts[1] not in ("r", "c"):
        return None
    incident_id = callback.number(parts[2])
    return None if incident_id is None else (parts[1], incident_id)


async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A tap on "Restore them" or "They were cancelled" under an incident message."""
    query = update.callback_query
    assert query is not None and query.data is not None
    d = deps(context)
    lang = await d.staff_language(query.from_user.id)
    _ = gettext_for(lang)
    parsed = _parse(query.data)
    if parsed is None:
        log.warning("refused callback data %r", query.data[:64])
        await answer(query, _("This button is not valid."), alert=True)
        return
    verb, incident_id = parsed
    try:
        incident, changes = await d.booking.sync.resolve(incident_id, query.from_user.id, restore=verb == "r")
    except LookupError:
        log.warning("refused an incident answer by someone not allowed or for an unknown incident")
        await answer(query, _("This button is not valid."), alert=True)
        return
    except IncidentClosed:
        await answer(query, _("Someone has already answered this."), alert=True)
        if query.message is not None:
            await edit_quietly(context.bot, query.message.chat.id, query.message.message_id, markup=None)
        return
    await answer(query)
    if query.message is not None:
        text = alerts.incident_answered(d.practice, incident, verb == "r", lang)
        await edit_quietly(context.bot, query.message.chat.id, query.message.message_id, text=text)
    await notify.calendar_changes(context.bot, d, changes)
