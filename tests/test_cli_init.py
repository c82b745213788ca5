"""`bookingbot init` (and the check that follows it) in an empty folder, as a new user runs them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main
from bot.settings import ENV, load_settings
from scheduling.config import load_practice
from tests.fixtures.practice import EXAMPLE


@pytest.fixture
def fresh_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working folder and no bookingbot settings in the environment."""
    for var in ENV.values():
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_init_writes_a_loadable_practice_file_and_an_env_template(
    fresh_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["init"]) == 0
    practice = load_practice(fresh_dir / "practice.toml")
    assert len(practice.locations) == 2 and len(practice.specialists) == 2
    assert len(practice.categories()) == 2
    env = (fresh_dir / ".env").read_text(encoding="utf-8")
    for var in ("BOOKINGBOT_TELEGRAM_TOKEN", "BOOKINGBOT_CONFIG", "BOOKINGBOT_DATA_DIR"):
        assert f"{var}=" in env
    out = capsys.readouterr().out
    assert "wrote practice.toml" in out and "wrote .env" in out


def test_env_template_loads_as_settings(fresh_dir: Path) -> None:
    assert main(["init"]) == 0
    values = {}
    for line in (fresh_dir / ".env").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value
    settings = load_settings(env=values)
    assert settings.token is None
    assert settings.config == Path("practice.toml")
    load_practice(settings.config)


def test_init_makes_webhook_mode_ready_with_a_long_random_secret(fresh_dir: Path) -> None:
    assert main(["init"]) == 0
    first = (fresh_dir / ".env").read_text(encoding="utf-8")
    # Uncommenting the webhook lines gives settings that load: the secret is long enough and Telegram's alphabet.
    values = {"BOOKINGBOT_WEBHOOK_URL": "https://bot.example.org/telegram"}
    for line in first.splitlines():
        name, _, value = line.removeprefix("# ").partition("=")
        if name in ("BOOKINGBOT_WEBHOOK_SECRET", "BOOKINGBOT_HEALTH_TOKEN"):
            values[name] = value
    settings = load_settings(env=values)
    assert settings.webhook_secret and re.fullmatch(r"[0-9a-f]{64}", settings.webhook_secret)
    assert settings.health_token and re.fullmatch(r"[0-9a-f]{64}", settings.health_token)
    (fresh_dir / ".env").unlink()
    assert main(["init"]) == 0
    assert (fresh_dir / ".env").read_text(encoding="utf-8") != first  # made anew each time, never a shared default


def test_init_again_overwrites_nothing(fresh_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init"]) == 0
    (fresh_dir / "practice.toml").write_text("# mine\n", encoding="utf-8")
    (fresh_dir / ".env").write_text("BOOKINGBOT_TELEGRAM_TOKEN=mine\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["init"]) == 0
    assert (fresh_dir / "practice.toml").read_text(encoding="utf-8") == "# mine\n"
    assert (fresh_dir / ".env").read_text(encoding="utf-8") == "BOOKINGBOT_TELEGRAM_TOKEN=mine\n"
    out = capsys.readouterr().out
    assert "practice.toml exists already" in out and ".env exists already" in out


def test_init_with_another_config_name(fresh_dir: Path) -> None:
    assert main(["init", "--config", "clinic.toml"]) == 0
    assert (fresh_dir / "clinic.toml").read_text(encoding="utf-8") == EXAMPLE.read_text(encoding="utf-8")
    assert not (fresh_dir / "practice.toml").exists()


def test_init_then_check_points_at_what_to_fill_in(fresh_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init"]) == 0
    capsys.readouterr()
    assert main(["check"]) == 1
    out = capsys.readouterr().out
    assert "✔ practice file practice.toml" in out
    assert "– Telegram token: not checked: no token" in out
    assert "✘ specialists[anna].telegram_id: nobody can approve" in out


def test_console_script_init(fresh_dir: Path) -> None:
    script = Path(sys.executable).with_name("bookingbot")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "bot.cli"]
    done = subprocess.run([*cmd, "init"], cwd=fresh_dir, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    load_practice(fresh_dir / "practice.toml")
    assert (fresh_dir / ".env").exists()
