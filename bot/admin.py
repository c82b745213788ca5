"""Operator commands on the data folder and database: `bookingbot feed rotate` and `bookingbot calendars`."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from typing import TextIO

from bot.settings import Settings, SettingsError
from bot.web import feed_key, feed_url, feed_urls
from scheduling.booking import utcnow
from scheduling.config import Practice
from scheduling.db import create_schema, make_engine
from scheduling.store import Store


@contextlib.asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[Store]:
    """The bot's database, its schema brought up to date as `bookingbot run` would."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
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


async def print_feeds(settings: Settings, practice: Practice, out: TextIO | None = None) -> None:
    """Every specialist's current feed address."""
    async with open_store(settings) as store:
        urls = await feed_urls(settings, store, practice)
    print("Read-only calendar feeds (subscribe in Outlook or any calendar app):", file=out or sys.stdout)
    for spec_id, url in urls.items():
        print(f"  {spec_id}: {url}", file=out or sys.stdout)
