"""The partner API's races on PostgreSQL: row locks and unique keys, not SQLite's single writer, keep them apart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.fixtures.caldav import CalDAVServer
from tests.fixtures.partner import SATURDAY_NINE, PartnerSite, partner_site
from tgemu import BotApiEmulator

pytestmark = pytest.mark.postgres


@pytest_asyncio.fixture
async def pg_site(
    tmp_path: Path,
    emulator: BotApiEmulator,
    radicale_account: CalDAVServer,
    monkeypatch: pytest.MonkeyPatch,
    pg_url: str,
) -> AsyncIterator[PartnerSite]:
    async with partner_site(tmp_path, emulator, radicale_account, monkeypatch, database_url=pg_url) as s:
        yield s


async def test_many_posts_for_one_slot_give_one_booking(pg_site: PartnerSite) -> None:
    start = SATURDAY_NINE.isoformat()  # only Ana works then
    answers = await asyncio.gather(
        *(
            pg_site.post_booking(
                "insurer" if n % 2 else "portal",
                start=start,
                client={"name": "Jan Lis", "phone": "+48601000111", "reference": f"P-{n}"},
            )
            for n in range(8)
        )
    )
    assert sorted(a.status for a in answers) == [201] + [409] * 7
    async with pg_site.bot.runtime.store.tx() as tx:
        active = await tx.active_appointments("ana", SATURDAY_NINE, SATURDAY_NINE.replace(hour=12))
    assert len(active) == 1


async def test_concurrent_retries_with_one_key_make_one_booking(pg_site: PartnerSite) -> None:
    answers = await asyncio.gather(*(pg_site.post_booking(key="same-key") for _ in range(4)))
    assert [a.status for a in answers] == [201] * 4
    assert len({(await a.json())["id"] for a in answers}) == 1
    feed = await (await pg_site.http.get("/api/v1/bookings?since=0", headers=pg_site.auth())).json()
    assert [c["event"] for c in feed["changes"]] == ["confirmed"]
