"""E-mail to clients: queued in the database, and sent once the SMTP server takes it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiosmtpd.controller import Controller

from bot.mail import Mailer
from bot.settings import Settings
from scheduling.mail_queue import MailQueue
from scheduling.store import Store
from tests.fixtures.caldav import free_port
from tests.test_e2e_client_files import Inbox


async def test_an_email_waits_while_the_server_is_down_and_goes_out_when_it_is_back(
    tmp_path: Path, sqlite_store: Store
) -> None:
    now = [datetime(2026, 11, 30, 7, 0, tzinfo=UTC)]
    port = free_port()
    settings = Settings(
        data_dir=tmp_path, smtp_host="127.0.0.1", smtp_port=port, smtp_security="none", smtp_from="bot@example.org"
    )
    mailer = Mailer(settings, sqlite_store, lambda: now[0])
    async with sqlite_store.tx() as tx:
        client = await tx.upsert_client(42, name="Jan", email="jan@example.org", at=now[0])
    await mailer.queue.add(client.id, "Confirmed", "Your appointment is confirmed.", b"BEGIN:VCALENDAR", now[0])

    assert await mailer.flush() == 0  # nobody listens on the port
    assert await MailQueue(sqlite_store).pending() == 1
    assert await mailer.flush() == 0  # not due again yet

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        now[0] += timedelta(minutes=1)
        assert await mailer.flush() == 1
    finally:
        controller.stop()
    (mail,) = inbox.messages
    assert mail["To"] == "jan@example.org" and mail["Subject"] == "Confirmed"
    assert await MailQueue(sqlite_store).pending() == 0  # nothing is kept once sent
