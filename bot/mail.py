"""E-mail to clients (confirmations, changes, cancellations with the .ics attached) through SMTP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable
from datetime import datetime
from email.message import EmailMessage
from email.utils import make_msgid
from html import unescape

import aiosmtplib

from bot.settings import Settings
from scheduling.mail_queue import MailQueue
from scheduling.store import Store

log = logging.getLogger(__name__)

_TAG = re.compile(r"<[^>]+>")


def plain(html_text: str) -> str:
    """A Telegram HTML message as plain e-mail text."""
    return unescape(_TAG.sub("", html_text))


class Mailer:
    """Queues e-mails durably and sends them; a server that is down only delays them."""

    def __init__(self, settings: Settings, store: Store, clock: Callable[[], datetime]):
        assert settings.smtp_host and settings.smtp_from
        self.settings = settings
        self.queue = MailQueue(store)
        self.clock = clock
        self._task: asyncio.Task[int] | None = None

    @staticmethod
    def port_for(settings: Settings) -> int:
        """The port given, else the usual one for the security mode."""
        if settings.smtp_port:
            return settings.smtp_port
        return {"tls": 465, "starttls": 587}.get(settings.smtp_security, 25)

    async def send_later(self, client_id: int, subject: str, body: str, ics: bytes | None) -> None:
        """Queue an e-mail to the client and start sending it in the background."""
        await self.queue.add(client_id, subject, body, ics, self.clock())
        self.kick()

    def kick(self) -> None:
        """Send what is due now, without making the caller wait for the SMTP server."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._flush_logged(), name="mail")

    async def _flush_logged(self) -> int:
        try:
            return await self.flush()
        except Exception:
            # The rows stay queued; the sweep tries again.
            log.exception("sending e-mail failed")
            return 0

    async def close(self) -> None:
        """Let a send under way finish (briefly); what is left stays queued for the next start."""
        if self._task is not None and not self._task.done():
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._task, timeout=10)

    def _message(self, to: str, subject: str, body: str, ics: str | None) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.settings.smtp_from
        msg["To"] = to
        msg["Subject"] = subject
        msg["Message-ID"] = make_msgid(domain=(self.settings.smtp_from or "@bookingbot").rpartition("@")[2])
        msg.set_content(body)
        if ics is not None:
            method = "CANCEL" if "METHOD:CANCEL" in ics else "PUBLISH"
            msg.add_attachment(
                ics.encode("utf-8"),
                maintype="text",
                subtype="calendar",
                filename="appointment.ics",
                params={"method": method},
            )
        return msg

    async def flush(self) -> int:
        """Send every due e-mail; returns how many went out."""
        sent = 0
        s = self.settings
        for row, address in await self.queue.claim(self.clock()):
            if not address:
                await self.queue.done(row.id)  # the client removed their address: nothing to send to
                continue
            try:
                await aiosmtplib.send(
                    self._message(address, row.subject, row.body, row.ics),
                    hostname=s.smtp_host,
                    port=self.port_for(s),
                    username=s.smtp_user or None,
                    password=s.smtp_password or None,
                    use_tls=s.smtp_security == "tls",
                    start_tls=s.smtp_security == "starttls",
                    timeout=30,
                )
            except (aiosmtplib.SMTPException, OSError) as exc:
                kept = await self.queue.failed(row.id, self.clock(), type(exc).__name__)
                log.warning("e-mail %s not sent (%s)%s", row.id, type(exc).__name__, "" if kept else "; given up")
                continue
            await self.queue.done(row.id)
            sent += 1
        return sent
