"""The partner API over real HTTP against the running web app, with every specialist's calendar on a real Radicale."""

from __future__ import annotations

import asyncio
import logging
from datetime import date, timedelta

import httpx
import pytest

from scheduling.model import Status
from tests.fixtures.partner import LABEL, MONDAY, PORTAL_RATE, SATURDAY_NINE, PartnerSite


def z(value) -> str:  # type: ignore[no-untyped-def]
    return value.isoformat().replace("+00:00", "Z")


async def test_services_need_a_right_key_and_say_nothing_otherwise(site: PartnerSite) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": site.keys["insurer"]},
        {"Authorization": "Basic x"},
    ):
        resp = await site.http.get("/api/v1/services", headers=headers)
        assert resp.status == 401
        assert await resp.read() == b""
        assert resp.headers["WWW-Authenticate"] == "Bearer"
    for key in ("insurer", "insurer_next"):  # both keys of a rotation work
        resp = await site.http.get("/api/v1/services", headers={"Authorization": f"Bearer {site.keys[key]}"})
        assert resp.status == 200
        assert [s["id"] for s in (await resp.json())["services"]] == ["consult"]


async def test_slots_show_partner_windows_that_the_telegram_dialog_never_offers(site: PartnerSite) -> None:
    saturday = "2026-12-05"
    resp = await site.http.get(f"/api/v1/slots?service=consult&from={saturday}&to={saturday}", headers=site.auth())
    assert resp.status == 200
    slots = (await resp.json())["slots"]
    assert [s["start"] for s in slots] == [z(SATURDAY_NINE + timedelta(hours=h)) for h in range(4)]
    assert slots[0]["specialists"] == [{"id": "ana", "name": "Ana Nowak"}]
    assert slots[0]["location"]["time_zone"] == "Europe/Warsaw"
    assert slots[0]["channels"] == ["on_site", "video"]
    # The same window is closed to the clients of the Telegram dialog.
    booking = site.bot.runtime.booking
    assert await booking.day_slots("consult", "centre", ["ana"], date(2026, 12, 5)) == []
    assert await booking.month_days("consult", "centre", ["ana"], date(2026, 12, 1), date(2026, 12, 31)) == {
        date(2026, 12, d) for d in (1, 2, 3, 4, 7, 8, 9, 10, 11, 14, 15, 16, 17, 18, 21, 22, 23, 24, 25, 28, 29, 30, 31)
    }


async def test_slots_refuse_bad_queries_with_every_field_named(site: PartnerSite) -> None:
    resp = await site.http.get("/api/v1/slots?service=therapy&from=2026-13-01", headers=site.auth())
    assert resp.status == 422
    body = await resp.json()
    assert body["error"] == "invalid_request"
    assert {p["field"] for p in body["problems"]} == {"service", "from", "to"}


async def test_partner_notice_replaces_the_specialists_own(site: PartnerSite) -> None:
    # Each specialist asks 12 hours' notice; the insurer's rule is 4 hours.
    soon = await site.post_booking(start=z(MONDAY + timedelta(hours=3)))
    assert soon.status == 422
    assert await soon.json() == {"error": "rules_broken", "problems": [{"kind": "lead_time"}]}
    later = await site.post_booking(start=z(MONDAY + timedelta(hours=5)))
    assert later.status == 201, await later.text()
    booking = await later.json()
    assert booking["status"] == "confirmed"
    assert booking["start"] == z(MONDAY + timedelta(hours=5))
    assert booking["client_ref"] == "INS-0001"
    assert later.headers["Location"] == f"/api/v1/bookings/{booking['id']}"
    assert "Maria" not in await later.text()


async def test_every_broken_rule_is_listed(site: PartnerSite) -> None:
    # Sunday 03:10 local: outside any window, off the hourly grid, and sooner than the notice.
    resp = await site.post_booking(start="2026-11-30T08:10:00Z", channel="phone")
    assert resp.status == 422
    kinds = {p["kind"] for p in (await resp.json())["problems"]}
    assert kinds == {"lead_time", "off_grid", "channel_not_allowed"}
    wrong = await site.post_booking(service="therapy")
    assert (await wrong.json())["problems"] == [{"kind": "service_not_offered"}]


async def test_malformed_bodies_are_refused_and_change_nothing(site: PartnerSite) -> None:
    headers = {**site.auth(), "Content-Type": "application/json"}
    for data in (b"not json", b"[]", b'{"service": "consult"}'):
        resp = await site.http.post("/api/v1/bookings", data=data, headers=headers)
        assert resp.status == 422, data
        assert (await resp.json())["error"] == "invalid_request"
    bad_client = await site.post_booking(client={"name": "M", "phone": "12", "reference": "X", "email": "no"})
    fields = {p["field"] for p in (await bad_client.json())["problems"]}
    assert fields == {"client.name", "client.phone", "client.email"}
    naive = await site.post_booking(start="2026-11-30T12:00:00")
    assert naive.status == 422
    too_big = await site.http.post("/api/v1/bookings", data=b"{" + b" " * (65 * 1024) + b"}", headers=headers)
    assert too_big.status == 413
    feed = await (await site.http.get("/api/v1/bookings?since=0", headers=site.auth())).json()
    assert feed == {"changes": [], "next": 0}


async def test_idempotent_retry_gives_the_first_booking(site: PartnerSite) -> None:
    first = await site.post_booking(key="retry-1")
    second = await site.post_booking(key="retry-1")
    assert first.status == second.status == 201
    assert await first.json() == await second.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    other = await site.post_booking(key="retry-1", note="something else")
    assert other.status == 422
    assert (await other.json())["error"] == "idempotency_key_reused"
    feed = await (await site.http.get("/api/v1/bookings?since=0", headers=site.auth())).json()
    assert [c["event"] for c in feed["changes"]] == ["confirmed"]


async def test_concurrent_retries_with_one_key_make_one_booking(site: PartnerSite) -> None:
    answers = await asyncio.gather(*(site.post_booking(key="same-key") for _ in range(3)))
    bodies = [await a.json() for a in answers]
    assert [a.status for a in answers] == [201, 201, 201]
    assert len({b["id"] for b in bodies}) == 1
    feed = await (await site.http.get("/api/v1/bookings?since=0", headers=site.auth())).json()
    assert len(feed["changes"]) == 1


async def test_two_partners_racing_for_one_slot(site: PartnerSite) -> None:
    start = z(SATURDAY_NINE)
    insurer, portal = await asyncio.gather(
        site.post_booking("insurer", start=start),
        site.post_booking(
            "portal", start=start, client={"name": "Jan Lis", "phone": "+48601000111", "reference": "P-9"}
        ),
    )
    assert sorted([insurer.status, portal.status]) == [201, 409]
    loser = portal if portal.status == 409 else insurer
    body = await loser.json()
    assert body["error"] == "slot_taken"
    alternatives = [a["start"] for a in body["alternatives"]]
    assert alternatives and start not in alternatives
    assert z(SATURDAY_NINE + timedelta(hours=1)) in alternatives


async def test_random_assignment_spreads_over_free_specialists(site: PartnerSite) -> None:
    start = z(MONDAY + timedelta(days=1, hours=3))  # Tuesday 11:00 in Warsaw: all three free
    got = []
    for n in range(3):
        resp = await site.post_booking(
            start=start, client={"name": "Eva Nowak", "phone": "+48601000222", "reference": f"R{n}"}
        )
        assert resp.status == 201
        got.append((await resp.json())["specialist"])
    assert sorted(got) == ["ana", "ben", "cleo"]
    full = await site.post_booking(start=start)
    assert full.status == 409
    # Over many hours, the choice is not always the same specialist.
    chosen = set()
    for hour in range(1, 9):
        resp = await site.post_booking(start=z(MONDAY + timedelta(days=2, hours=hour)))
        chosen.add((await resp.json())["specialist"])
    assert len(chosen) > 1


async def test_a_returning_client_gets_the_specialist_asked_for_when_free(site: PartnerSite) -> None:
    for hour in (2, 3, 4):
        resp = await site.post_booking(start=z(MONDAY + timedelta(days=1, hours=hour)), specialist="ben")
        assert (await resp.json())["specialist"] == "ben"
    # Ben is taken at that hour now: another specialist is assigned rather than none.
    again = await site.post_booking(start=z(MONDAY + timedelta(days=1, hours=2)), specialist="ben")
    assert again.status == 201
    assert (await again.json())["specialist"] in {"ana", "cleo"}


async def test_a_partner_sees_and_changes_only_its_own_bookings(site: PartnerSite) -> None:
    booking = await (await site.post_booking()).json()
    path = f"/api/v1/bookings/{booking['id']}"
    own = await site.http.get(path, headers=site.auth())
    assert own.status == 200 and await own.json() == booking
    for method in ("GET", "DELETE"):
        resp = await site.http.request(method, path, headers=site.auth("portal"))
        assert resp.status == 404
    assert (await (await site.http.get(path, headers=site.auth())).json())["status"] == "confirmed"
    unknown = await site.http.get("/api/v1/bookings/0123456789abcdef01234567", headers=site.auth())
    assert unknown.status == 404
    feed = await (await site.http.get("/api/v1/bookings?since=0", headers=site.auth("portal"))).json()
    assert feed["changes"] == []


async def test_cancellation_until_the_partner_deadline(site: PartnerSite) -> None:
    start = MONDAY + timedelta(hours=8)  # 16:00 and 17:00 in Warsaw
    early = await (await site.post_booking(start=z(start))).json()
    late = await (await site.post_booking(start=z(start + timedelta(hours=1)))).json()
    site.clock.now = start - timedelta(hours=4)  # exactly the deadline of the first: still allowed
    resp = await site.http.delete(f"/api/v1/bookings/{early['id']}", headers=site.auth())
    assert resp.status == 200
    assert (await resp.json())["status"] == "cancelled"
    again = await site.http.delete(f"/api/v1/bookings/{early['id']}", headers=site.auth())
    assert again.status == 200  # a retried DELETE is harmless
    site.clock.now = start + timedelta(hours=1) - timedelta(hours=4, minutes=-1)
    closed = await site.http.delete(f"/api/v1/bookings/{late['id']}", headers=site.auth())
    assert closed.status == 409
    assert await closed.json() == {"error": "cancellation_closed"}
    feed = await (await site.http.get("/api/v1/bookings?since=0", headers=site.auth())).json()
    assert [(c["booking"]["id"], c["event"]) for c in feed["changes"]] == [
        (early["id"], "confirmed"),
        (late["id"], "confirmed"),
        (early["id"], "cancelled"),
    ]
    after = await (await site.http.get(f"/api/v1/bookings?since={feed['next']}", headers=site.auth())).json()
    assert after == {"changes": [], "next": feed["next"]}


async def test_the_calendar_event_carries_the_partner_label(site: PartnerSite, radicale_account) -> None:  # type: ignore[no-untyped-def]
    booking = await (await site.post_booking()).json()
    async with site.bot.runtime.store.tx() as tx:
        appt = (await tx.partners.by_public_id("insurer", booking["id"]))[0]  # type: ignore[index]
    assert appt.status == Status.CONFIRMED
    url = site.bot.runtime.gateway.booking_calendar_url(appt.specialist_id).rstrip("/") + f"/{appt.uid}.ics"
    auth = (radicale_account.username, radicale_account.password)
    text = ""
    async with httpx.AsyncClient(auth=auth) as client:
        for _ in range(100):
            resp = await client.get(url)
            if resp.status_code == 200:
                text = resp.text
                break
            await asyncio.sleep(0.1)
    assert f"SUMMARY:{LABEL}: M. K." in text  # the client only by initials: the default calendar detail
    assert "STATUS:CONFIRMED" in text


async def test_rate_limit_per_key_with_retry_after(site: PartnerSite) -> None:
    for _ in range(PORTAL_RATE):
        assert (await site.http.get("/api/v1/services", headers=site.auth("portal"))).status == 200
    limited = await site.http.get("/api/v1/services", headers=site.auth("portal"))
    assert limited.status == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    # Another partner's key is counted on its own.
    assert (await site.http.get("/api/v1/services", headers=site.auth())).status == 200


async def test_calls_are_logged_without_client_data(site: PartnerSite, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        resp = await site.post_booking()
        booking = await resp.json()
        await site.http.get(f"/api/v1/bookings/{booking['id']}", headers=site.auth())
        await site.http.get("/api/v1/services", headers={"Authorization": "Bearer nope"})
    lines = [r.getMessage() for r in caplog.records if r.name == "partner_api.app"]
    assert any(line.startswith("partner insurer POST /api/v1/bookings 201") for line in lines)
    assert any(line.startswith("partner - GET /api/v1/services 401") for line in lines)
    for secret in ("Maria", "Kowalczyk", "601", "INS-0001", "Referred", site.keys["insurer"]):
        assert secret not in caplog.text
