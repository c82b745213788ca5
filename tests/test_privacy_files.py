"""Clients' data on disk and in logs: private files, hidden SQL parameters, logs without personal data or secrets."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from bot.cli import main
from bot.runtime import start_runtime
from bot.serve import print_calendars
from bot.settings import ENV, OWN_LOGGERS, QUIET, Settings, configure_logging, format_exception_safely
from scheduling.db import create_schema, make_engine
from scheduling.store import Store
from tests.fixtures.bot import e2e_practice
from tests.fixtures.practice import EXAMPLE

NOTE = "Jan Nowak, panic attacks since May"
TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    level, handlers = root.level, root.handlers[:]
    levels = {name: logging.getLogger(name).level for name in (*QUIET, *OWN_LOGGERS, "telegram")}
    yield
    root.setLevel(level)
    root.handlers[:] = handlers
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)


async def test_the_database_and_its_wal_files_are_private(tmp_path: Path) -> None:
    db = tmp_path / "new" / "bookingbot.db"
    engine = make_engine(f"sqlite:///{db}")
    try:
        await create_schema(engine)
        async with Store(engine).tx() as tx:
            await tx.upsert_client(1, name="Jan Nowak")
        files = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
        assert all(f.exists() for f in files)
        assert [mode(f) for f in files] == [0o600] * 3
        assert mode(db.parent) == 0o700
    finally:
        await engine.dispose()


async def test_sql_parameters_never_reach_an_error_message(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'b.db'}")
    try:
        await create_schema(engine)
        with pytest.raises(IntegrityError) as caught:
            async with Store(engine).tx() as tx:
                await tx.add_client_record(name=NOTE, phone="+48601234567", email=None, created_by="x", at=None)  # type: ignore[arg-type]
        assert "Jan Nowak" not in str(caught.value) and "601234567" not in str(caught.value)
        assert "hidden" in str(caught.value)
    finally:
        await engine.dispose()


def test_init_writes_env_readable_by_its_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_logging: None
) -> None:
    for var in ENV.values():
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["init"]) == 0
    assert mode(tmp_path / ".env") == 0o600


def _raise_chained() -> None:
    try:
        raise ConnectionError("calendar server refused")
    except ConnectionError as exc:
        raise ValueError(f"could not parse {NOTE!r}") from exc


def test_tracebacks_keep_frames_and_network_errors_but_withhold_other_messages() -> None:
    try:
        _raise_chained()
    except ValueError as exc:
        text = format_exception_safely(exc)
    assert "Jan Nowak" not in text and "panic" not in text
    assert "ConnectionError: calendar server refused" in text
    assert "ValueError: (message withheld" in text and "direct cause" in text
    assert "_raise_chained" in text  # the frames are all there


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_log_lines_never_carry_the_token_a_hex_run_or_an_exception_message(
    fmt: str, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    configure_logging(fmt=fmt)
    log = logging.getLogger("bot.privacy_test")
    log.info("POST https://api.telegram.org/bot%s/sendMessage", TOKEN)
    log.info("GET /feeds/anna/%s.ics", "0123456789abcdef0123456789ABCDEF")
    try:
        _raise_chained()
    except ValueError:
        log.exception("update failed")
    err = capsys.readouterr().err
    assert TOKEN not in err and TOKEN.split(":")[1] not in err and "0123456789abcdef" not in err
    assert "Jan Nowak" not in err and "panic" not in err
    assert "bot<token>/sendMessage" in err and "/feeds/anna/<redacted>.ics" in err
    if fmt == "json":
        assert json.loads(err.splitlines()[-1])["exception"].endswith("(message withheld: it may hold clients' data)")


def test_verbose_logs_bookingbot_at_debug_and_libraries_at_info(restore_logging: None) -> None:
    configure_logging(verbose=True)
    assert logging.getLogger("bot.handlers.client").getEffectiveLevel() == logging.DEBUG
    assert logging.getLogger("scheduling.booking").getEffectiveLevel() == logging.DEBUG
    # At DEBUG these log whole requests and statements: message texts, URLs with the token, SQL parameters.
    for library in ("telegram.ext", "aiosqlite", "sqlalchemy.engine", "caldav", "aiohttp.client"):
        assert logging.getLogger(library).getEffectiveLevel() >= logging.INFO, library
    configure_logging()
    assert logging.getLogger("bot.handlers.client").getEffectiveLevel() == logging.INFO


async def test_calendar_passwords_are_printed_when_created_then_only_by_bookingbot_calendars(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    settings = Settings(data_dir=tmp_path / "data", caldav_port=0)
    practice = e2e_practice()
    printed: list[str] = []
    for _ in range(2):
        runtime = await start_runtime(settings, practice)
        try:
            out = io.StringIO()
            await print_calendars(runtime, out)
            printed.append(out.getvalue())
            password = runtime.accounts["anna"].password
        finally:
            await runtime.close()
    assert mode(settings.data_dir) == 0o700
    assert f"password {password}" in printed[0]
    assert password not in printed[1] and "user anna" in printed[1] and "bookingbot calendars" in printed[1]
    assert "/feeds/" not in printed[0] + printed[1]  # feed addresses are passwords too
    capsys.readouterr()
    args = ["calendars", "--config", str(EXAMPLE), "--data-dir", str(settings.data_dir)]
    assert await asyncio.to_thread(main, args) == 0  # its own event loop, as from the shell
    out = capsys.readouterr().out
    assert f"user anna  password {password}" in out and "/feeds/anna/" in out
