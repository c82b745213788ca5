"""`bookingbot demo`: the whole system on this machine, with a terminal chat standing in for Telegram.

The real Application, the embedded Radicale and SQLite run as in production; only Telegram is replaced by
the local Bot API emulator, and one person at the keyboard plays the client and the specialists in turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import re
import signal
import sys
import threading
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from aiohttp import web
from telegram.ext import Application

from bot.local import local_bot
from bot.runtime import Runtime
from bot.serve import on_signals, print_calendars
from bot.settings import Settings
from bot.web import make_web_app
from scheduling.config import Practice, parse_practice
from scheduling.db import private_dir
from tgemu import BotApiEmulator, ChatMessage, TelegramUser

CLIENT = "client"
CLIENT_ID = 100001
FIRST_SPECIALIST_ID = 900001
log = logging.getLogger(__name__)

DEFAULT_PHONE = "+48601234567"

HELP = """\
Commands:
  3                  tap the button numbered [3]
  /tap <label>       tap a shown button by its label (or part of it); /tap /regex/ taps the first match
  /contact [phone]   share a phone number (default {phone}), as Telegram's contact button does
  /as <who>          speak as someone else: {people}
As a specialist (e.g. /as anna): /agenda lists the week with a card per visit (move, cancel, reassign,
  notes, flags, came / did not come), /new books a visit for a client, /find <name or phone> finds one.
  /help              this list;   /quit (or Ctrl-D) ends the demo
Anything else is sent to the bot as a message: /start, /book, /cancel, a name, a note ..."""


def demo_practice(practice: Practice) -> Practice:
    """The practice with a demo Telegram id for every specialist that has none, and the first one an admin."""
    data = practice.model_dump()
    taken = {s["telegram_id"] for s in data["specialists"] if s.get("telegram_id")}
    ids = (n for n in range(FIRST_SPECIALIST_ID, FIRST_SPECIALIST_ID + 10_000) if n not in taken)
    for spec in data["specialists"]:
        if not spec.get("telegram_id"):
            spec["telegram_id"] = next(ids)
    if not data["practice"].get("admins") and data["specialists"]:
        # The first specialist also runs the practice, so the demo shows the admin's tools (delete) too.
        data["practice"]["admins"] = [data["specialists"][0]["telegram_id"]]
    return parse_practice(data)


def demo_language(env: Mapping[str, str]) -> str:
    """The Telegram language the demo people use: from $LANG ("pl_PL.UTF-8" -> "pl"), else English."""
    code = re.match(r"[a-z]{2,3}(?=[_.@]|$)", env.get("LANG", ""))
    return code.group() if code else "en"


# --- rendering ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """What a button number stands for: a callback from one message."""

    message_id: int
    data: str
    label: str


def _tappable(button: dict[str, object]) -> bool:
    data = button.get("callback_data")
    # Calendar padding, weekday names and the month title answer nothing: leave them unnumbered.
    return isinstance(data, str) and "noop" not in data.split("|")


def _snapshot(message: ChatMessage) -> tuple[object, ...]:
    return (message.text, repr(message.inline_keyboard), repr(message.reply_keyboard), message.document)


def _indent(text: str, first: str, rest: str) -> str:
    lines = text.splitlines() or [""]
    return "\n".join([first + lines[0], *(rest + line for line in lines[1:])])


@dataclass
class Person:
    """One emulated Telegram user the terminal can speak as, and what they have already been shown."""

    key: str
    label: str
    user: TelegramUser
    seen: dict[int, tuple[object, ...]] = field(default_factory=dict)
    answers_seen: int = 0
    targets: list[Target] = field(default_factory=list)

    def unseen(self) -> list[tuple[ChatMessage, bool]]:
        """Messages new or changed since last shown, each with whether it is an edit.

        An edit that only took the buttons away is left out: the screen says nothing new.
        """
        fresh = []
        for m in self.user.messages:
            before, now = self.seen.get(m.message_id), _snapshot(m)
            if before == now or (before and not m.inline_keyboard and before[0] == now[0]):
                continue
            fresh.append((m, before is not None))
        return fresh

    def mark_seen(self) -> None:
        self.seen = {m.message_id: _snapshot(m) for m in self.user.messages}
        self.answers_seen = len(self.user.answers)


class Terminal:
    """The terminal chat: renders what the bot sends to the current person and turns input into actions."""

    def __init__(self, people: dict[str, Person], out: TextIO, files: Path) -> None:
        self.people = people
        self.current = people[CLIENT]
        self.out = out
        self.files = files
        self._hinted: dict[str, int] = {}

    def write(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    @property
    def prompt(self) -> str:
        return f"[{self.current.key}] > "

    def show(self) -> None:
        """Print what the current person has not seen yet, renumber the buttons, hint at others' news."""
        person = self.current
        fresh: list[Target] = []
        for message, edited in person.unseen():
            self._render(message, edited, fresh)
        for answer in person.user.answers[person.answers_seen :]:
            if answer.text:
                self.write(f"  ({'alert' if answer.show_alert else 'popup'}) {answer.text}")
        person.mark_seen()
        live = {
            (m.message_id, b.get("callback_data"))
            for m in person.user.messages
            for row in m.inline_keyboard or []
            for b in row
        }
        person.targets = fresh or [t for t in person.targets if (t.message_id, t.data) in live]
        self._hint_others()

    def _render(self, message: ChatMessage, edited: bool, targets: list[Target]) -> None:
        """Print one message; its tappable buttons are numbered on from `targets`, which they join."""
        head = "bot (edited): " if edited else "bot: "
        if message.document is not None:
            path = self.files / Path(message.document.file_name).name
            path.write_bytes(message.document.data)
            size = len(message.document.data)
            self.write(f"{head}📎 {message.document.file_name} ({size} bytes) saved to {path}")
            head = "     "
        if message.text:
            self.write(_indent(message.text, head, " " * len(head)))
        for row in message.inline_keyboard or []:
            cells = []
            for button in row:
                label = str(button["text"])
                if _tappable(button):
                    targets.append(Target(message.message_id, str(button["callback_data"]), label))
                    cells.append(f"[{len(targets)}] {label}")
                elif button.get("url"):
                    cells.append(f"{label} <{button['url']}>")
                else:
                    cells.append(label)
            self.write("    " + "  ".join(cells).rstrip())
        if message.reply_keyboard:
            keys = "  ".join(f"({b['text']})" for row in message.reply_keyboard for b in row)
            contact = any(b.get("request_contact") for row in message.reply_keyboard for b in row)
            self.write(f"    keyboard: {keys}" + ("  <- /contact shares it" if contact else ""))

    def _hint_others(self) -> None:
        for person in self.people.values():
            count = 0 if person is self.current else len(person.unseen())
            if count and count != self._hinted.get(person.key):
                plural = "message" if count == 1 else "messages"
                self.write(f"  · {person.label} has {count} new {plural}: /as {person.key}")
            self._hinted[person.key] = count

    def find(self, wanted: str) -> Target:
        """The shown button a number, a label (or unique part of one) or /regex/ names."""
        targets = self.current.targets
        if wanted.isdigit():
            if 1 <= int(wanted) <= len(targets):
                return targets[int(wanted) - 1]
            raise LookupError(f"no button [{wanted}] shown")
        if len(wanted) > 2 and wanted.startswith("/") and wanted.endswith("/"):
            try:
                pattern = re.compile(wanted[1:-1])
            except re.error as exc:
                raise LookupError(f"{wanted} is not a regular expression: {exc}") from None
            matches = [t for t in targets if pattern.fullmatch(t.label)][:1]
        else:
            matches = [t for t in targets if t.label == wanted] or [
                t for t in targets if wanted.lower() in t.label.lower()
            ]
        if len(matches) != 1:
            problem = "no button" if not matches else f"{len(matches)} buttons"
            raise LookupError(f"{problem} labelled {wanted!r}: use a number")
        return matches[0]

    async def handle(self, line: str) -> bool:
        """Act on one input line; False when the demo should end."""
        command, _, arg = line.strip().partition(" ")
        arg = arg.strip()
        user = self.current.user
        if not command:
            return True
        if command in ("/quit", "/exit"):
            return False
        if command == "/help":
            self.write(self.help())
            return True
        try:
            if command == "/as":
                self._switch(arg)
                return True
            if command.isdigit() and len(command) <= 2 and not arg and self.current.targets:
                target = self.find(command)
                await user.tap_data(target.data, target.message_id)
            elif command == "/tap":
                target = self.find(arg)
                await user.tap_data(target.data, target.message_id)
            elif command == "/contact":
                await user.share_contact(arg or DEFAULT_PHONE)
            else:
                await user.send(line.strip())
        except (LookupError, AssertionError) as exc:
            self.write(f"  ! {exc}")
        self.show()
        return True

    def _switch(self, key: str) -> None:
        person = self.people.get(key.lower())
        if person is None:
            raise LookupError(f"nobody called {key!r}: choose one of {', '.join(self.people)}")
        self.current = person
        self.write(f"-- now speaking as {person.label}")
        if not person.unseen():
            self.write("  (nothing new; buttons shown before still work)")
        self.show()

    def help(self) -> str:
        people = ", ".join(f"{p.key} ({p.label})" for p in self.people.values())
        return HELP.format(phone=DEFAULT_PHONE, people=people)


# --- input -------------------------------------------------------------------------------------------


class LineReader:
    """Reads input lines in a daemon thread, so a read blocked on the terminal never holds up shutdown."""

    def __init__(self, stdin: TextIO, stdout: TextIO) -> None:
        self.stdin, self.stdout = stdin, stdout
        self.interactive = stdin.isatty()
        self.readline = self.interactive and stdin is sys.stdin and stdout is sys.stdout
        self._loop = asyncio.get_running_loop()
        self._requests: queue.Queue[tuple[str, asyncio.Future[str | None]] | None] = queue.Queue()
        self._pending: asyncio.Future[str | None] | None = None
        self.stopped = False
        threading.Thread(target=self._run, name="demo-input", daemon=True).start()

    async def read(self, prompt: str) -> str | None:
        """The next line without its newline, or None at EOF or after stop()."""
        if self.stopped:
            return None
        if not self.readline:
            self.stdout.write(prompt)
            self.stdout.flush()
        self._pending = self._loop.create_future()
        self._requests.put((prompt, self._pending))
        line = await self._pending
        if line is not None and not self.interactive:
            # Echo scripted input so the transcript reads like a conversation.
            self.stdout.write(line + "\n")
        elif line is None:
            self.stdout.write("\n")
        return line

    def stop(self) -> None:
        """End the demo: the pending read (if any) returns None."""
        self.stopped = True
        if self._pending is not None and not self._pending.done():
            self._pending.set_result(None)

    def close(self) -> None:
        self._requests.put(None)

    def _run(self) -> None:
        while (request := self._requests.get()) is not None:
            prompt, future = request
            try:
                if self.readline:
                    line: str | None = input(prompt)
                else:
                    raw = self.stdin.readline()
                    line = raw.rstrip("\r\n") if raw else None
            except (EOFError, OSError, ValueError):
                line = None
            self._loop.call_soon_threadsafe(_resolve, future, line)
            if line is None:
                return


def _resolve(future: asyncio.Future[str | None], line: str | None) -> None:
    if not future.done():
        future.set_result(line)


# --- the demo ----------------------------------------------------------------------------------------


async def run_demo(
    settings: Settings, practice: Practice, *, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout
) -> int:
    """Run bot, calendar and database locally and chat with them on the terminal until /quit, EOF or Ctrl-C."""
    practice = demo_practice(practice)
    lang = demo_language(os.environ)
    private_dir(settings.data_dir)
    async with (
        _quiet_logging(),
        BotApiEmulator() as emulator,
        local_bot(
            settings.data_dir,
            emulator,
            practice,
            database_url=settings.database_url,
            caldav_port=settings.caldav_port,
        ) as (runtime, app),
        _web_endpoints(runtime, app) as web_base,
    ):
        people = {CLIENT: Person(CLIENT, "the client", emulator.user(CLIENT_ID, "Client", lang))}
        for spec in practice.specialists:
            assert spec.telegram_id is not None
            user = emulator.user(spec.telegram_id, spec.name.split()[0], lang)
            # A specialist has started the bot once, or it could not send them requests.
            await user.send("/start")
            people[spec.id] = Person(spec.id, spec.name, user)
            people[spec.id].mark_seen()
        terminal = Terminal(people, stdout, settings.data_dir)
        terminal.write(_banner(practice, terminal))
        await print_calendars(runtime, stdout, feed_base=web_base, everything=True)
        terminal.write()
        await _chat(terminal, LineReader(stdin, stdout))
        try:
            # Write what is still queued for the calendar before it stops, like `bookingbot run` does.
            # One pass writes one change per appointment (in order): repeat until nothing is left.
            for _pass in range(20):
                if not await runtime.worker.run_once():
                    break
        except Exception:
            log.exception("could not flush the calendar outbox")
        terminal.write(f"Demo stopped. Bookings stay in {settings.data_dir}.")
    return 0


async def _chat(terminal: Terminal, reader: LineReader) -> None:
    """Read and act on lines until /quit, the end of the input or Ctrl-C."""
    stop_listening = on_signals(reader.stop, signal.SIGINT)
    try:
        while not reader.stopped:
            line = await reader.read(terminal.prompt)
            if line is None or not await terminal.handle(line):
                break
    finally:
        stop_listening()
        reader.close()


@contextlib.asynccontextmanager
async def _web_endpoints(runtime: Runtime, app: Application) -> AsyncIterator[str]:
    """Serve health and the calendar feeds on a free loopback port, as `bookingbot run` serves them; yield its URL."""
    runner = web.AppRunner(make_web_app(runtime, app, runtime.settings), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def _quiet_logging() -> AsyncIterator[None]:
    """Keep the chat readable: only warnings while the demo runs, unless debug logging was asked for."""
    root = logging.getLogger()
    level = root.level
    if level > logging.DEBUG:
        root.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        root.setLevel(level)


def _banner(practice: Practice, terminal: Terminal) -> str:
    return (
        f"bookingbot demo: {practice.practice.name}, running here with a local stand-in for Telegram.\n"
        "You play the client and the specialists in turn; what the bot sends the current person "
        "is printed, buttons are numbered.\n" + terminal.help() + "\n"
    )
