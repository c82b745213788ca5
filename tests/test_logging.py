"""Logs: JSON lines on request (BOOKINGBOT_LOG_FORMAT=json), and an idle bot's periodic sweep says nothing."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli import main
from bot.local import local_bot
from bot.settings import QUIET, configure_logging
from tests.fixtures.bot import e2e_practice
from tgemu import BotApiEmulator


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    level, handlers = root.level, root.handlers[:]
    quiet = {name: logging.getLogger(name).level for name in QUIET}
    yield
    root.setLevel(level)
    root.handlers[:] = handlers
    for name, old in quiet.items():
        logging.getLogger(name).setLevel(old)


def test_json_format_writes_one_object_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(fmt="json")
    log = logging.getLogger("bookingbot.test")
    log.info("calendar %s answered %d", "anna", 503)
    try:
        raise ConnectionError("refused")
    except ConnectionError:
        log.exception("write failed")
    lines = capsys.readouterr().err.splitlines()
    first, second = (json.loads(line) for line in lines)
    assert first["level"] == "INFO" and first["logger"] == "bookingbot.test"
    assert first["message"] == "calendar anna answered 503" and first["time"].endswith("+00:00")
    assert second["level"] == "ERROR" and "ConnectionError: refused" in second["exception"]


def test_an_unknown_log_format_is_refused_with_the_setting_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BOOKINGBOT_LOG_FORMAT", "xml")
    assert main(["init", "--config", "/nonexistent/never-written.toml"]) == 2
    assert "BOOKINGBOT_LOG_FORMAT: 'xml' is not one of text, json" in capsys.readouterr().err


async def test_an_idle_bot_sweeps_without_a_log_line(
    tmp_path: Path, emulator: BotApiEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    configure_logging()
    async with local_bot(tmp_path, emulator, e2e_practice(), sweep_seconds=1.0) as (_runtime, app):
        assert app.job_queue is not None
        (job,) = app.job_queue.get_jobs_by_name("sweep")
        caplog.clear()
        with caplog.at_level(logging.INFO):
            seen = {job.next_t}
            while len(seen) < 3:  # two sweeps have run
                await asyncio.sleep(0.05)
                seen.add(job.next_t)
            records = [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.INFO]
    assert records == []
