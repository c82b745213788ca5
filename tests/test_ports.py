"""A port held by another program: `run` names it and the setting to change; `demo` takes a free one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main
from bot.settings import ENV
from tests.fixtures.practice import EXAMPLE

ROOT = Path(__file__).resolve().parents[1]


def test_run_names_the_port_in_use_and_the_setting(
    busy_port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for var in ENV.values():
        monkeypatch.delenv(var, raising=False)
    code = main(
        ["run", "--token", "123:abc", "--config", str(EXAMPLE), "--data-dir", str(tmp_path), "--caldav-port",
         str(busy_port)]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert f"127.0.0.1:{busy_port}" in err and f"port {busy_port}" in err and "BOOKINGBOT_CALDAV_PORT" in err
    assert "refused" not in err and "Traceback" not in err


def test_demo_takes_a_free_port_when_the_usual_one_is_taken(busy_port: int, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOOKINGBOT_")}
    env |= {"LANG": "C.UTF-8", "BOOKINGBOT_CALDAV_PORT": str(busy_port)}
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "demo", "--data-dir", str(tmp_path / "demo")],
        input="/quit\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"Port {busy_port} is in use" in result.stdout
    assert "Embedded CalDAV calendars" in result.stdout and f":{busy_port}/" not in result.stdout
