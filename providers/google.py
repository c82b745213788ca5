"""Google Calendar: Google's CalDAV endpoint with the specialist's OAuth token, so the CalDAV bridge serves it as is."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp

from caldav_bridge.client import Account
from caldav_bridge.gateway import CalDAVGateway
from providers.connections import Choice, RemoteCalendar, SpecialistTokens
from providers.oauth import TIMEOUT, OAuthProvider
from scheduling.calendar import CalendarUnavailable
from scheduling.config import Specialist

WRITABLE = ("owner", "writer")


def calendar_url(provider: OAuthProvider, calendar_id: str) -> str:
    """The CalDAV collection of one Google calendar."""
    return f"{provider.caldav_url.rstrip('/')}/{quote(calendar_id, safe='@')}/events/"


class GoogleCalendars:
    """Lists a Google account's calendars at sign-in and attaches the chosen ones to the CalDAV gateway."""

    def __init__(self, provider: OAuthProvider, gateway: CalDAVGateway) -> None:
        self.provider = provider
        self.gateway = gateway

    async def list_calendars(self, provider: OAuthProvider, token: str) -> tuple[str, list[RemoteCalendar]]:
        """(account, calendars) from the Calendar API's calendar list; the primary calendar's id is the account."""
        url = provider.api_url.rstrip("/") + "/users/me/calendarList"
        items: list[dict[str, Any]] = []
        params = {"maxResults": "250"}
        async with aiohttp.ClientSession(timeout=TIMEOUT, headers={"Authorization": f"Bearer {token}"}) as http:
            while True:
                async with http.get(url, params=params) as r:
                    if r.status != 200:
                        raise CalendarUnavailable(f"google calendar list answered {r.status}")
                    page = await r.json(content_type=None)
                items.extend(page.get("items", []))
                if not page.get("nextPageToken"):
                    break
                params["pageToken"] = page["nextPageToken"]
        calendars = [
            RemoteCalendar(
                i["id"], i.get("summaryOverride") or i.get("summary") or i["id"], i.get("accessRole") in WRITABLE
            )
            for i in items
            if not i.get("deleted")
        ]
        account = next((i["id"] for i in items if i.get("primary")), calendars[0].id if calendars else "")
        return account, calendars

    async def attach(self, spec: Specialist, choice: Choice, tokens: SpecialistTokens) -> None:
        booking = calendar_url(self.provider, choice.booking.id)
        busy = tuple(calendar_url(self.provider, c.id) for c in choice.busy)
        await self.gateway.attach(spec, Account(booking, choice.account, "", booking, busy, bearer=tokens))

    def detach(self, specialist_id: str) -> None:
        self.gateway.detach(specialist_id)
