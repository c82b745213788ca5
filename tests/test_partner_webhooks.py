"""Partner webhooks: signed, in order per booking, retried after the receiver was down; attendance reaches them."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from datetime import timedelta
from typing import Any

import httpx
from icalendar import Calendar

from scheduling.model import Status
from tests.fixtures.partner import ANA_TG, BEN_TG, CLEO_TG, MONDAY, PartnerSite

TELEGRAM_OF = {"ana": ANA_TG, "ben": BEN_TG, "cleo": CLEO_TG}


async def received(site: PartnerSite, count: int) -> list[tuple[dict[str, str], bytes]]:
    """Wait until the receiver holds `count` deliveries (the bot's own worker sends them)."""
    for _ in range(200):
        if len(site.hooks.received) >= count:
            break
        await asyncio.sleep(0.05)
    return site.hooks.received


def verified(site: PartnerSite, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """The body, once the signature checks out as a partner would check it."""
    timestamp = headers["X-Bookingbot-Timestamp"]
    expected = hmac.new(site.hook_secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Bookingbot-Signature"], f"sha256={expected}")
    return json.loads(body)


async def test_webhooks_are_signed_and_in_order(site: PartnerSite) -> None:
    booking = await (await site.post_booking()).json()
    resp = await site.http.delete(f"/api/v1/bookings/{booking['id']}", headers=site.auth())
    assert resp.status == 200
    deliveries = await received(site, 2)
    bodies = [verified(site, headers, body) for headers, body in deliveries]
    assert [(b["event"], b["booking"]["status"]) for b in bodies] == [
        ("confirmed", "confirmed"),
        ("cancelled", "cancelled"),
    ]
    assert all(b["booking"]["id"] == booking["id"] for b in bodies)
    assert deliveries[0][0]["X-Bookingbot-Event"] == "confirmed"
    # The same changes, in the same form, are in the feed.
    feed = await (await site.http.get("/api/v1/bookings?since=0", headers=site.auth())).json()
    assert feed["changes"] == bodies
    # A forged body does not verify.
    headers, body = deliveries[0]
    forged = body.replace(b"confirmed", b"cancelled")
    expected = hmac.new(site.hook_secret, headers["X-Bookingbot-Timestamp"].encode() + b"." + forged, hashlib.sha256)
    assert headers["X-Bookingbot-Signature"] != f"sha256={expected.hexdigest()}"


async def test_webhook_retried_after_the_receiver_was_down(site: PartnerSite) -> None:
    await site.hooks.stop()
    booking = await (await site.post_booking()).json()
    store = site.bot.runtime.store
    for _ in range(100):
        async with store.tx() as tx:
            (event,) = await tx.partners.changes("insurer", 0, 10)
        if event.attempts:
            break
        await asyncio.sleep(0.05)
    assert event.attempts >= 1 and event.done_at is None
    assert event.last_error is not None and "Maria" not in event.last_error
    await site.hooks.start()
    await asyncio.sleep(0.5)
    assert site.hooks.received == []  # not before the backoff has passed
    site.clock.advance(minutes=1)
    site.bot.runtime.webhooks.wake()
    (headers, body), *_ = await received(site, 1)
    assert verified(site, headers, body)["booking"]["id"] == booking["id"]


async def test_attendance_reaches_the_partner(site: PartnerSite) -> None:
    start = MONDAY + timedelta(hours=5)
    came = await (await site.post_booking()).json()
    missed = await (
        await site.post_booking(client={"name": "Olga Wrona", "phone": "+48601000333", "reference": "INS-2"})
    ).json()
    site.clock.now = start + timedelta(minutes=10)
    runtime = site.bot.runtime
    for booking, attended in ((came, True), (missed, False)):
        async with runtime.store.tx() as tx:
            appt, _ = await tx.partners.by_public_id("insurer", booking["id"])  # type: ignore[misc]
        await runtime.booking.mark(appt.id, TELEGRAM_OF[appt.specialist_id], attended=attended)
    deliveries = await received(site, 4)
    events = {(b["booking"]["id"], b["event"]) for b in (verified(site, h, body) for h, body in deliveries)}
    assert (came["id"], "completed") in events and (missed["id"], "no_show") in events
    got = await (await site.http.get(f"/api/v1/bookings/{came['id']}", headers=site.auth())).json()
    assert got["status"] == Status.COMPLETED


async def test_a_move_in_the_calendar_app_reaches_the_partner(site: PartnerSite, radicale_account) -> None:  # type: ignore[no-untyped-def]
    booking = await (await site.post_booking(specialist="ana")).json()
    runtime = site.bot.runtime
    async with runtime.store.tx() as tx:
        appt, _ = await tx.partners.by_public_id("insurer", booking["id"])  # type: ignore[misc]
    url = runtime.gateway.booking_calendar_url("ana").rstrip("/") + f"/{appt.uid}.ics"
    auth = (radicale_account.username, radicale_account.password)
    async with httpx.AsyncClient(auth=auth) as http:
        for _ in range(100):  # the outbox writes the event shortly after the booking
            got = await http.get(url)
            if got.status_code == 200:
                break
            await asyncio.sleep(0.1)
        cal = Calendar.from_ical(got.text)
        event = cal.walk("VEVENT")[0]
        for name in ("DTSTART", "DTEND"):  # the specialist drags it an hour later in their calendar app
            later = event.decoded(name) + timedelta(hours=1)
            del event[name]
            event.add(name, later)
        headers = {"If-Match": got.headers["ETag"], "Content-Type": "text/calendar; charset=utf-8"}
        (await http.put(url, content=cal.to_ical(), headers=headers)).raise_for_status()
    await site.bot.sweep()
    feed = await (await site.http.get("/api/v1/bookings?since=0", headers=site.auth())).json()
    assert [c["event"] for c in feed["changes"]] == ["confirmed", "moved"]
    moved = feed["changes"][-1]["booking"]
    assert moved["start"] == (MONDAY + timedelta(hours=6)).isoformat().replace("+00:00", "Z")
    assert moved["status"] == "confirmed"
    deliveries = await received(site, 2)
    assert [verified(site, h, b)["event"] for h, b in deliveries] == ["confirmed", "moved"]
