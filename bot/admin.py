"""Operator commands on the data folder and database: `bookingbot feed rotate` and `bookingbot calendars`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from typing import TextIO
from urllib.parse import quote

from bot.settings import Settings, SettingsError
from bot.web import feed_key, feed_url, feed_urls
from scheduling.booking import utcnow
from scheduling.config import Practice
from scheduling.db import create_schema, make_engine, private_dir
from scheduling.store import Store


@contextlib.asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[Store]:
    """The bot's database, its schema brought up to date as `bookingbot run` would."""
    private_dir(settings.data_dir)
    engine = make_engine(settings.db_url)
    try:
        await create_schema(engine)
        yield Store(engine)
    finally:
        await engine.dispose()


async def rotate_feed(settings: Settings, practice: Practice, specialist_id: str, out: TextIO | None = None) -> str:
    """Give one specialist's feed a new address; the old one answers 404 from now on, in every process."""
    if specialist_id not in practice.specialist_by_id:
        known = ", ".join(s.id for s in practice.specialists)
        raise SettingsError(f"no specialist {specialist_id!r} in the practice file (specialists: {known})")
    key = feed_key(settings.data_dir)
    async with open_store(settings) as store, store.tx() as tx:
        generation = await tx.rotate_feed(specialist_id, utcnow())
    url = feed_url(settings, key, specialist_id, generation=generation)
    print(f"{specialist_id}: the old feed address no longer works; the new one is\n  {url}", file=out or sys.stdout)
    return url


async def print_calendars(settings: Settings, practice: Practice, out: TextIO | None = None) -> None:
    """The embedded calendars' addresses and logins, and every specialist's current feed address."""
    out = out or sys.stdout
    local = [s for s in practice.specialists if s.calendar_kind == "embedded"]
    if local:
        path = settings.data_dir / "radicale" / "credentials.json"
        try:
            creds = json.loads(await asyncio.to_thread(path.read_text, encoding="utf-8"))
        except FileNotFoundError:
            creds = {}
        host = f"[{settings.caldav_host}]" if ":" in settings.caldav_host else settings.caldav_host
        print("Embedded CalDAV calendars (add them in Apple Calendar, Thunderbird or DAVx5):", file=out)
        for spec in local:
            url = f"http://{host}:{settings.caldav_port}/{quote(spec.id)}/{quote(spec.caldav.booking_calendar)}/"
            if spec.id in creds:
                print(f"  {spec.id}: {url}  user {spec.id}  password {creds[spec.id]}", file=out)
            else:
                print(f"  {spec.id}: no password yet: `bookingbot run` creates it on its first start", file=out)
    async with open_store(settings) as store:
        urls = await feed_urls(settings, store, practice)
    print("Read-only calendar feeds (subscribe in Outlook or any calendar app):", file=out)
    for spec_id, url in urls.items():
        print(f"  {spec_id}: {url}", file=out)
