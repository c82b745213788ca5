"""End to end: clients' data as health data, read back from the real Radicale and the bot's own logs."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from icalendar import Calendar

from bot.settings import OWN_LOGGERS, QUIET, configure_logging
from scheduling.booking import Request
from scheduling.mail_queue import MailQueue
from scheduling.model import Channel, Status
from tests.fixtures.bot import ADMIN, ANNA, Bot, e2e_practice, running_bot
from tests.test_e2e_booking import book_first_consultation
from tgemu import BotApiEmulator, TelegramUser

NAME, PHONE, EMAIL, NOTE = "Jan Nowak", "+48601234567", "jan.nowak@example.org", "Prefer the quiet room, thanks! 🙂"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    level, handlers = root.level, root.handlers[:]
    levels = {name: logging.getLogger(name).level for name in (*QUIET, *OWN_LOGGERS)}
    yield
    root.setLevel(level)
    root.handlers[:] = handlers
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)


async def book_with_email(client: TelegramUser) -> None:
    """The whole dialog as a new client who gives every detail: name, phone, e-mail and a note."""
    await client.send("/start")
    for label in ("City centre office", "Individual", "First consultation", "Anna Kowalska", "2", "09:00", "On site"):
        await client.tap(label)
    await client.send(NOTE)
    await client.send(NAME)
    await client.share_contact(PHONE.lstrip("+"))
    await client.send(EMAIL)
    await client.tap("I agree")
    assert "Please check your request" in client.last.text
    await client.tap("Send request")


async def stored_event(bot: Bot, specialist: str, uid: str, *, until: str | None = None) -> str | None:
    """The event's text as the calendar server holds it (a plain GET, not the bot's CalDAV code).

    With `until`, wait (draining the outbox) until that text is in it, or it is gone when `until` is "".
    """
    account = bot.runtime.accounts[specialist]
    url = account.calendar_url.rstrip("/") + f"/{uid}.ics"
    text: str | None = None
    async with httpx.AsyncClient(auth=(account.username, account.password)) as http:
        for _ in range(100):
            await bot.drain_outbox()
            response = await http.get(url)
            text = response.text if response.status_code == 200 else None
            gone = until == "" and text is None
            if until is None or gone or (until != "" and text is not None and until in text):
                break
            await asyncio.sleep(0.1)
    return text


async def booked(bot: Bot, client: TelegramUser) -> tuple[int, str]:
    """The client's (first) appointment: its id and uid."""
    async with bot.runtime.store.tx() as tx:
        row = await tx.client_by_telegram(client.id)
        assert row is not None
        (appt, *_) = await tx.client_appointments(row.id)
    return appt.id, appt.uid


async def test_the_calendar_event_carries_the_service_and_initials_only(bot: Bot) -> None:
    client = bot.user(1501, "Jan")
    await book_first_consultation(client, note=NOTE)
    await bot.anna.tap("Approve")
    _, uid = await booked(bot, client)
    text = await stored_event(bot, "anna", uid, until="CONFIRMED")
    assert text is not None
    event = Calendar.from_ical(text).walk("VEVENT")[0]
    assert str(event["SUMMARY"]) == "First consultation: J. N."
    unfolded = text.replace("\r\n ", "")
    for secret in (NAME, "Nowak", PHONE, "601234567", "quiet room"):
        assert secret not in unfolded
    # The specialist still sees everything in Telegram.
    assert any(NAME in m.text for m in bot.anna.messages)


async def test_a_whole_booking_logs_nothing_of_the_client_nor_the_token(
    bot: Bot, tmp_path: Path, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    configure_logging(verbose=True)  # -v: the most a log ever says
    logging.getLogger("bot.e2e_privacy").info("the log is captured")
    client = bot.user(1502, "Jan")
    await book_with_email(client)
    assert "Your request has been sent" in client.last.text
    await bot.anna.tap("Approve")
    _, uid = await booked(bot, client)
    assert await stored_event(bot, "anna", uid, until="CONFIRMED")
    await client.send("/my")
    await bot.anna.send("/agenda")
    await bot.sweep()
    logged = capsys.readouterr().err
    server_log = tmp_path / "radicale" / "radicale.log"
    logged += server_log.read_text(encoding="utf-8", errors="replace") if server_log.exists() else ""
    assert "the log is captured" in logged
    for secret in (NAME, "Nowak", PHONE, "601234567", EMAIL, NOTE, "quiet room", bot.emulator.token.split(":")[1]):
        assert secret not in logged, secret


async def client_row(bot: Bot, telegram_id: int):  # type: ignore[no-untyped-def]
    async with bot.runtime.store.tx() as tx:
        return await tx.client_by_telegram(telegram_id)


async def to_contact(client: TelegramUser, *, note: str | None = NOTE, time: str = "09:00") -> None:
    """A new client up to the contact questions (Wed 2 Dec with Anna, on site), with or without a note."""
    await client.send("/start")
    for label in ("City centre office", "Individual", "First consultation", "Anna Kowalska", "2", time, "On site"):
        await client.tap(label)
    assert "Privacy: what you type from here on" in client.last.text  # seen before anything is typed
    if note is None:
        await client.tap("Skip")
    else:
        await client.send(note)


async def test_a_dialog_cancelled_before_consent_leaves_no_contact_details(bot: Bot) -> None:
    client = bot.user(1503, "Jan")
    await to_contact(client)
    await client.send(NAME)
    await client.share_contact(PHONE.lstrip("+"))
    await client.send(EMAIL)
    assert "please accept the terms" in client.last.text
    row = await client_row(bot, client.id)
    assert (row.name, row.phone, row.email) == (None, None, None)  # held in the dialog only
    await client.tap("Cancel")
    assert "Booking cancelled" in client.last.text
    async with bot.runtime.store.tx() as tx:
        assert await tx.get_draft(client.id) is None  # the note and the details went with it
        row = await tx.client_by_telegram(client.id)
        assert (row.name, row.phone, row.email) == (None, None, None)
        assert await tx.consents(row.id) == []


async def test_terms_and_health_information_are_agreed_to_separately_with_the_policy_version(bot: Bot) -> None:
    version = bot.runtime.practice.practice.policy_version
    client = bot.user(1504, "Jan")
    await to_contact(client)
    await client.send(NAME)
    await client.share_contact(PHONE.lstrip("+"))
    await client.tap("Skip")
    screen = client.last
    assert "information about your health" in screen.text
    assert ["Send without my note"] in screen.buttons
    await client.tap("I agree")
    row = await client_row(bot, client.id)
    assert (row.name, row.phone) == (NAME, PHONE)  # kept now that the client agreed
    async with bot.runtime.store.tx() as tx:
        consents = await tx.consents(row.id)
    assert [(c.kind, c.policy_version) for c in consents] == [("terms", version), ("health", version)]

    # Another client keeps the note to themselves: only the terms are agreed to, and the note is dropped.
    other = bot.user(1505, "Ola")
    await to_contact(other, time="10:00")
    await other.send("Ola Nowicka")
    await other.share_contact("48601000111")
    await other.tap("Skip")
    await other.tap("Send without my note")
    assert "Please check your request" in other.last.text and "quiet room" not in other.last.text
    await other.tap("Send request")
    async with bot.runtime.store.tx() as tx:
        row = await tx.client_by_telegram(other.id)
        assert [c.kind for c in await tx.consents(row.id)] == ["terms"]
        (appt,) = await tx.client_appointments(row.id)
    assert not appt.note

    # Agreed once to the terms, a later note asks only about the health information.
    await to_contact(other, note="Second note", time="11:00")
    screen = other.last
    assert "information about your health" in screen.text and "terms of service" not in screen.text


async def test_drafts_untouched_for_seven_days_are_deleted_by_the_sweep(bot: Bot) -> None:
    now = datetime.now(UTC)
    async with bot.runtime.store.tx() as tx:
        await tx.save_draft(1506, {"note": NOTE, "active": True}, None, at=now - timedelta(days=7, minutes=1))
        await tx.save_draft(1507, {"note": NOTE, "active": True}, None, at=now - timedelta(days=6))
    await bot.sweep()
    async with bot.runtime.store.tx() as tx:
        assert await tx.get_draft(1506) is None
        assert await tx.get_draft(1507) is not None


def _full_detail(data: dict[str, Any]) -> None:
    data["privacy"] = {"calendar_detail": "full"}


async def test_privacy_export_and_erasure_reach_the_calendar_of_a_past_visit(
    tmp_path: Path, emulator: BotApiEmulator
) -> None:
    # The practice writes everything to the calendar, so the past visit's event carries name, phone and note.
    async with running_bot(tmp_path, emulator, practice=e2e_practice(_full_detail)) as bot:
        await bot.anna.send("/start")
        client = bot.user(1508, "Jan")
        await book_with_email(client)
        await bot.anna.tap("Approve")
        past_id, past_uid = await booked(bot, client)
        text = await stored_event(bot, "anna", past_uid, until="CONFIRMED")
        assert text is not None and NAME in text.replace("\r\n ", "")

        # The visit takes place; a week later the client has another one coming, and an e-mail queued.
        bot.clock.advance(days=3)
        await bot.runtime.booking.mark(past_id, ANNA, attended=True)
        async with bot.runtime.store.tx() as tx:
            row = await tx.client_by_telegram(client.id)
        slots = await bot.runtime.booking.day_slots("first", "centre", ["anna"], date(2026, 12, 9))
        upcoming = await bot.runtime.booking.request(
            Request(row.id, "first", "centre", "anna", Channel.ON_SITE, slots[0].start, note="Second visit note")
        )
        await bot.runtime.booking.approve(upcoming.id, ANNA)
        await MailQueue(bot.runtime.store).add(row.id, "Your appointment", f"Dear {NAME}", None, bot.clock())
        assert await stored_event(bot, "anna", upcoming.uid, until="CONFIRMED")

        await client.send("/privacy")
        assert "What Harbour Counselling keeps about you" in client.last.text and NAME in client.last.text
        await client.tap("Download my data")
        name, data = client.documents[-1]
        assert name == "my-data.json"
        export = json.loads(data)
        assert export["client"]["name"] == NAME and export["client"]["email"] == EMAIL
        assert [a["note"] for a in export["appointments"]] == [NOTE, "Second visit note"]
        assert [a["status"] for a in export["appointments"]] == ["completed", "confirmed"]
        assert [c["kind"] for c in export["consents"]] == ["terms", "health"]
        assert export["emails_waiting"][0]["body"] == f"Dear {NAME}"
        assert {"messages", "waiting_list", "series", "partner_references"} <= export.keys()

        await client.send("/privacy")
        await client.tap("Erase my data")
        assert "upcoming appointments (1) are cancelled" in client.last.text
        await client.tap("Erase everything")
        assert "Your data is erased; 1 upcoming appointment(s) cancelled" in client.last.text
        assert any("asked for their data to be erased" in m.text for m in bot.anna.messages)

        # The calendar: the upcoming visit is gone, the past one stays without anything of the client.
        assert await stored_event(bot, "anna", upcoming.uid, until="") is None
        text = await stored_event(bot, "anna", past_uid, until="SUMMARY:First consultation: Client")
        assert text is not None
        unfolded = text.replace("\r\n ", "")
        assert "SUMMARY:First consultation: Client" in unfolded
        for secret in (NAME, "Nowak", "J. N.", PHONE, "601234567", EMAIL, "quiet room"):
            assert secret not in unfolded, secret

        # The database: the history stays, anonymous.
        async with bot.runtime.store.tx() as tx:
            gone = await tx.get_client(row.id)
            assert (gone.name, gone.phone, gone.email, gone.telegram_id) == (None, None, None, None)
            assert gone.erased_at is not None
            appts = await tx.client_appointments(row.id)
            assert [(a.status, a.note) for a in appts] == [(Status.COMPLETED, None), (Status.CANCELLED, None)]
            assert await tx.client_emails(row.id) == []
            consents = await tx.consents(row.id)
            assert len(consents) == 2 and all(c.withdrawn_at is not None for c in consents)
            assert len(await tx.transitions(past_id)) >= 2  # who did what, when: kept

        # Writing again, the client is a stranger to the bot.
        await client.send("/privacy")
        assert "No contact details." in client.last.text and "Appointments: 0" in client.last.text


async def test_withdrawing_consent_deletes_the_notes_and_asks_again(bot: Bot) -> None:
    client = bot.user(1509, "Jan")
    await book_with_email(client)
    await client.send("/privacy")
    assert "Health information in your notes: agreed on" in client.last.text
    await client.tap("Withdraw my consent")
    await client.tap("Withdraw")
    assert "Your consent is withdrawn; 1 note(s) deleted" in client.last.text
    async with bot.runtime.store.tx() as tx:
        row = await tx.client_by_telegram(client.id)
        (appt,) = await tx.client_appointments(row.id)
        assert appt.note is None and not await tx.has_consent(row.id, "2026-01")
    await to_contact(client, time="11:00")
    assert "please accept the terms" in client.last.text  # known details, consent asked again


async def test_the_retention_sweep_erases_clients_months_after_their_last_visit(
    tmp_path: Path, emulator: BotApiEmulator
) -> None:
    def keep_six_months(data: dict[str, Any]) -> None:
        data["privacy"] = {"retention_months": 6}

    async with running_bot(tmp_path, emulator, practice=e2e_practice(keep_six_months)) as bot:
        await bot.anna.send("/start")
        client = bot.user(1510, "Jan")
        await book_with_email(client)
        await bot.anna.tap("Approve")
        appt_id, uid = await booked(bot, client)
        bot.clock.advance(days=150)
        await bot.sweep()
        assert (await client_row(bot, client.id)).name == NAME  # five months: kept
        bot.clock.advance(days=40)
        await bot.sweep()
        async with bot.runtime.store.tx() as tx:
            erased = await tx.get_appointment(appt_id)
        assert erased.client.erased_at is not None and erased.client.name is None and erased.note is None
        assert await client_row(bot, client.id) is None
        text = await stored_event(bot, "anna", uid, until="SUMMARY:First consultation: Client")
        assert text is not None and "J. N." not in text
        admin_row = await client_row(bot, ANNA)
        assert admin_row is not None  # staff are never erased


async def test_an_admin_erases_a_record_of_someone_who_never_used_the_bot(bot: Bot) -> None:
    async with bot.runtime.store.tx() as tx:
        record = await tx.add_client_record(
            name="Maria Kowalczyk", phone="+48601999888", email=None, created_by="specialist:9001", at=bot.clock()
        )
        await tx.add_note(
            client_id=record.id, appointment_id=None, author="specialist:9001", text="Grief", at=bot.clock()
        )
    slots = await bot.runtime.booking.day_slots("first", "centre", ["anna"], date(2026, 12, 2))
    appt = await bot.runtime.booking.request(
        Request(record.id, "first", "centre", "anna", Channel.ON_SITE, slots[0].start)
    )
    # Anna is a specialist, not an admin: her view of the record has no such button, and forging one fails.
    await bot.anna.tap_data(f"k|cl|{record.id}")
    assert "Maria Kowalczyk" in bot.anna.last.text
    assert all("Erase" not in label for row in bot.anna.last.buttons for label in row)
    await bot.anna.tap_data(f"k|ery|{record.id}")
    assert bot.anna.answers[-1].text == "Only the appointment's specialist can do this."
    async with bot.runtime.store.tx() as tx:
        assert (await tx.get_client(record.id)).name == "Maria Kowalczyk"

    admin = bot.user(ADMIN, "Admin")
    await admin.send("/start")
    await admin.tap_data(f"k|cl|{record.id}")
    assert "Maria Kowalczyk" in admin.last.text
    await admin.tap("Erase this client's data")
    assert "upcoming appointments (1) are cancelled" in admin.last.text
    await admin.tap("Erase everything")
    assert "The client's data is erased; 1 upcoming appointment(s) cancelled" in admin.last.text
    assert any("asked for their data to be erased" in m.text for m in bot.anna.messages)
    async with bot.runtime.store.tx() as tx:
        gone = await tx.get_client(record.id)
        assert gone.name is None and gone.phone is None and await tx.notes(client_id=record.id) == []
        assert (await tx.get_appointment(appt.id)).status == Status.CANCELLED
