"""End to end: a partner's booking reaches the specialist in Telegram, whose Refuse works inside the window only."""

from __future__ import annotations

import asyncio
import json

from tests.fixtures.partner import ANA_TG, BEN_TG, CLEO_TG, LABEL, PartnerSite

TELEGRAM_OF = {"ana": ANA_TG, "ben": BEN_TG, "cleo": CLEO_TG}


async def _book_and_tell(site: PartnerSite, **body: object) -> tuple[dict, object]:  # type: ignore[type-arg]
    booking = await (await site.post_booking(**body)).json()
    specialist = site.bot.user(TELEGRAM_OF[booking["specialist"]], booking["specialist"])
    await site.bot.sweep()
    return booking, specialist


async def test_refuse_works_at_29_minutes_and_the_partner_is_told(site: PartnerSite) -> None:
    for tg in TELEGRAM_OF.values():
        await site.bot.user(tg).send("/start")
    booking, specialist = await _book_and_tell(site, specialist="ana")
    notice = specialist.last  # type: ignore[attr-defined]
    assert "Baltic Health Insurance" in notice.text and LABEL in notice.text
    assert "Maria Kowalczyk" in notice.text and "+48601234567" in notice.text
    assert notice.buttons == [["Refuse"]]
    site.clock.advance(minutes=29)
    await site.bot.sweep()  # the window is still open: the button stays
    assert specialist.last.buttons == [["Refuse"]]  # type: ignore[attr-defined]
    await specialist.tap("Refuse")  # type: ignore[attr-defined]
    assert specialist.answers[-1].text == "Refused. The partner has been told."  # type: ignore[attr-defined]
    assert specialist.last.buttons == []  # type: ignore[attr-defined]
    assert "refused by you" in specialist.last.text  # type: ignore[attr-defined]
    got = await (await site.http.get(f"/api/v1/bookings/{booking['id']}", headers=site.auth())).json()
    assert got["status"] == "refused"
    feed = await (await site.http.get("/api/v1/bookings?since=0", headers=site.auth())).json()
    assert [c["event"] for c in feed["changes"]] == ["confirmed", "refused"]
    for _ in range(200):
        if len(site.hooks.received) >= 2:
            break
        await asyncio.sleep(0.05)
    assert [json.loads(body)["event"] for _, body in site.hooks.received] == ["confirmed", "refused"]
    # The time is free again for the partner to rebook.
    again = await site.post_booking(
        specialist="ana", client={"name": "Maria Kowalczyk", "phone": "+48601234567", "reference": "INS-0001"}
    )
    assert again.status == 201 and (await again.json())["specialist"] == "ana"


async def test_refuse_is_refused_after_30_minutes_and_the_button_goes(site: PartnerSite) -> None:
    for tg in TELEGRAM_OF.values():
        await site.bot.user(tg).send("/start")
    booking, specialist = await _book_and_tell(site)
    site.clock.advance(minutes=30)
    await specialist.tap("Refuse")  # type: ignore[attr-defined]
    assert specialist.answers[-1].show_alert  # type: ignore[attr-defined]
    assert "has passed" in specialist.answers[-1].text  # type: ignore[attr-defined]
    assert specialist.last.buttons == []  # type: ignore[attr-defined]
    got = await (await site.http.get(f"/api/v1/bookings/{booking['id']}", headers=site.auth())).json()
    assert got["status"] == "confirmed"


async def test_the_refuse_button_disappears_when_the_window_closes(site: PartnerSite) -> None:
    for tg in TELEGRAM_OF.values():
        await site.bot.user(tg).send("/start")
    _, specialist = await _book_and_tell(site)
    assert specialist.last.buttons == [["Refuse"]]  # type: ignore[attr-defined]
    site.clock.advance(minutes=30, seconds=1)
    await site.bot.sweep()
    assert specialist.last.buttons == []  # type: ignore[attr-defined]
    assert "confirmed" in specialist.last.text  # type: ignore[attr-defined]


async def test_only_the_specialist_may_refuse(site: PartnerSite) -> None:
    for tg in TELEGRAM_OF.values():
        await site.bot.user(tg).send("/start")
    booking, _ = await _book_and_tell(site, specialist="ana")
    async with site.bot.runtime.store.tx() as tx:
        appt, _ = await tx.partners.by_public_id("insurer", booking["id"])  # type: ignore[misc]
    ben = site.bot.user(BEN_TG)
    await ben.tap_data(f"s|x|{appt.id}", ben.last.message_id)
    assert ben.answers[-1].text == "This button is not valid."  # as for an appointment that does not exist
    got = await (await site.http.get(f"/api/v1/bookings/{booking['id']}", headers=site.auth())).json()
    assert got["status"] == "confirmed"


async def test_the_agenda_shows_the_partner_label(site: PartnerSite) -> None:
    await site.bot.user(ANA_TG).send("/start")
    await site.post_booking(specialist="ana")
    ana = site.bot.user(ANA_TG)
    await ana.send("/agenda")
    assert f"Consultation ({LABEL})" in ana.last.text
    assert "Maria Kowalczyk" in ana.last.text


async def test_the_specialist_is_told_when_the_partner_cancels(site: PartnerSite) -> None:
    for tg in TELEGRAM_OF.values():
        await site.bot.user(tg).send("/start")
    booking, specialist = await _book_and_tell(site, specialist="ana")
    notice_id = specialist.last.message_id  # type: ignore[attr-defined]
    assert (await site.http.delete(f"/api/v1/bookings/{booking['id']}", headers=site.auth())).status == 200
    await site.bot.sweep()
    assert "The client cancelled Consultation" in specialist.last.text  # type: ignore[attr-defined]
    notice = next(m for m in specialist.messages if m.message_id == notice_id)  # type: ignore[attr-defined]
    assert notice.buttons == [] and "cancelled" in notice.text
    await site.bot.sweep()  # told once
    assert sum("The client cancelled" in m.text for m in specialist.messages) == 1  # type: ignore[attr-defined]
