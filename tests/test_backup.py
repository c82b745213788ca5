"""`bookingbot backup` then `bookingbot restore` into an empty data folder: the same appointments and events."""

from __future__ import annotations

import io
import stat
import tarfile
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from icalendar import Calendar

from bot.cli import main
from bot.demo import demo_practice, run_demo
from bot.settings import ENV, Settings
from caldav_bridge.embedded import EmbeddedCalDAV
from scheduling.config import load_practice
from scheduling.db import Base, make_engine
from tests.fixtures.practice import EXAMPLE
from tests.test_demo import SCRIPT


@pytest.fixture(autouse=True)
def _no_settings_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ENV.values():
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LANG", "en_GB.UTF-8")


async def table_rows(data_dir: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table of the data folder's SQLite database, in key order."""
    engine = make_engine(Settings(data_dir=data_dir).db_url)
    try:
        async with engine.connect() as conn:
            return {
                table.name: [tuple(r) for r in await conn.execute(sa.select(table).order_by(*table.primary_key))]
                for table in Base.metadata.sorted_tables
            }
    finally:
        await engine.dispose()


async def served_events(data_dir: Path) -> dict[str, list[tuple[str, str, str]]]:
    """(UID, STATUS, DTSTART) of the events each specialist's booking calendar serves from this data folder."""
    server = EmbeddedCalDAV(data_dir, port=0)
    accounts = await server.start(demo_practice(load_practice(EXAMPLE)))
    try:
        events = {}
        async with httpx.AsyncClient(timeout=10) as client:
            for spec_id, account in accounts.items():
                response = await client.get(account.calendar_url, auth=(account.username, account.password))
                assert response.status_code == 200, response.text
                found = Calendar.from_ical(response.content).walk("VEVENT") if response.content.strip() else []
                events[spec_id] = sorted((str(e["UID"]), str(e["STATUS"]), e["DTSTART"].dt.isoformat()) for e in found)
        return events
    finally:
        await server.stop()


async def test_backup_then_restore_gives_the_same_appointments_and_events(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    original, restored, archive = tmp_path / "data", tmp_path / "restored" / "data", tmp_path / "b" / "backup.tar.gz"
    await run_demo(
        Settings(data_dir=original, caldav_port=0),
        load_practice(EXAMPLE),
        stdin=io.StringIO(SCRIPT + "/quit\n"),
        stdout=io.StringIO(),
    )
    rows = await table_rows(original)
    assert len(rows["appointments"]) == 1 and len(rows["transitions"]) == 2
    events = await served_events(original)
    assert len(events["anna"]) == 1 and events["anna"][0][1] == "CONFIRMED"

    assert main(["backup", "--data-dir", str(original), str(archive)]) == 0
    assert "and the SQLite database" in capsys.readouterr().out
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert "database.sqlite3" in names and "data/feed.key" in names
    assert "data/radicale/credentials.json" in names
    assert not [n for n in names if n.endswith(("-wal", "-shm", "radicale.log", "bookingbot.db"))]

    assert main(["restore", "--data-dir", str(restored), str(archive)]) == 0
    assert await table_rows(restored) == rows
    assert await served_events(restored) == events
    assert (restored / "feed.key").read_bytes() == (original / "feed.key").read_bytes()


async def test_restore_refuses_a_folder_in_use_and_backup_never_overwrites(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    await run_demo(
        Settings(data_dir=data, caldav_port=0),
        load_practice(EXAMPLE),
        stdin=io.StringIO("/quit\n"),
        stdout=io.StringIO(),
    )
    archive = tmp_path / "backup.tar.gz"
    assert main(["backup", "--data-dir", str(data), str(archive)]) == 0
    before = archive.read_bytes()
    capsys.readouterr()

    assert main(["backup", "--data-dir", str(data), str(archive)]) == 2
    assert "exists already" in capsys.readouterr().err and archive.read_bytes() == before
    feed_key = (data / "feed.key").read_bytes()
    assert main(["restore", "--data-dir", str(data), str(archive)]) == 2
    assert "is not empty" in capsys.readouterr().err and (data / "feed.key").read_bytes() == feed_key

    (tmp_path / "junk.tar.gz").write_bytes(b"not an archive")
    assert main(["restore", "--data-dir", str(tmp_path / "new"), str(tmp_path / "junk.tar.gz")]) == 2
    assert "cannot restore it" in capsys.readouterr().err
    assert not (tmp_path / "new").exists() or not any((tmp_path / "new").iterdir())
