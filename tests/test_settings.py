"""Runtime settings: environment, command-line overrides, and errors that name the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import main
from bot.settings import SettingsError, load_settings, require_token


def test_defaults_are_the_embedded_set_up() -> None:
    s = load_settings(env={})
    assert s.api_url == "https://api.telegram.org"
    assert s.bot_base_url == "https://api.telegram.org/bot"
    assert s.db_url.startswith("sqlite+aiosqlite:///") and s.db_url.endswith("data/bookingbot.db")
    assert s.webhook_url is None


def test_command_line_overrides_the_environment() -> None:
    env = {"BOOKINGBOT_TELEGRAM_API_URL": "http://tg.local:8081/", "BOOKINGBOT_DATA_DIR": "/srv/a"}
    s = load_settings({"data_dir": "/srv/b"}, env=env)
    assert s.bot_base_url == "http://tg.local:8081/bot" and s.data_dir == Path("/srv/b")


@pytest.mark.parametrize("name", ["BOOKINGBOT_WEBHOOK_SECRET", "BOOKINGBOT_HEALTH_TOKEN"])
def test_secrets_must_be_long(name: str) -> None:
    env = {"BOOKINGBOT_WEBHOOK_URL": "https://bot.example.org/hook", "BOOKINGBOT_WEBHOOK_SECRET": "a" * 40}
    with pytest.raises(SettingsError) as short:
        load_settings(env=env | {name: "s3cret-value"})
    assert str(short.value) == (
        f"{name}: at least 32 characters, this one has 12; make one with `openssl rand -hex 32`"
    )
    assert "s3cret-value" not in str(short.value)
    assert load_settings(env=env | {name: "b" * 32}) is not None


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"BOOKINGBOT_TELEGRAM_API_URL": "tg.local"}, "BOOKINGBOT_TELEGRAM_API_URL"),
        ({"BOOKINGBOT_CALDAV_PORT": "http"}, "BOOKINGBOT_CALDAV_PORT"),
        ({"BOOKINGBOT_LISTEN": "8080"}, "BOOKINGBOT_LISTEN"),
        ({"BOOKINGBOT_WEBHOOK_URL": "https://bot.example.org/hook"}, "BOOKINGBOT_WEBHOOK_SECRET"),
        ({"BOOKINGBOT_SMTP_HOST": "smtp.example.org"}, "BOOKINGBOT_SMTP_FROM"),
        ({"BOOKINGBOT_SMTP_PORT": "smtp"}, "BOOKINGBOT_SMTP_PORT"),
        ({"BOOKINGBOT_SMTP_SECURITY": "ssl3"}, "BOOKINGBOT_SMTP_SECURITY"),
        ({"BOOKINGBOT_SMTP_USER": "bot"}, "BOOKINGBOT_SMTP_PASSWORD"),
    ],
)
def test_wrong_settings_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        load_settings(env=env)


def test_token_is_required_to_run_and_never_shown() -> None:
    with pytest.raises(SettingsError, match="BOOKINGBOT_TELEGRAM_TOKEN"):
        require_token(load_settings(env={}))
    s = load_settings(env={"BOOKINGBOT_TELEGRAM_TOKEN": "123:secret-token"})
    assert require_token(s) == "123:secret-token"
    assert "secret-token" not in repr(s)


def test_run_without_token_stops_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BOOKINGBOT_TELEGRAM_TOKEN", raising=False)
    example = Path(__file__).resolve().parents[1] / "practice.example.toml"
    code = main(["run", "--config", str(example), "--data-dir", str(tmp_path)])
    assert code == 2
    assert "BOOKINGBOT_TELEGRAM_TOKEN" in capsys.readouterr().err


def test_run_with_a_broken_practice_file_names_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "practice.toml"
    bad.write_text('[practice]\nname = "X"\ntimezone = "Mars/Olympus"\n', encoding="utf-8")
    assert main(["run", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "practice.timezone: Mars/Olympus is not a known time zone" in err
    assert "locations: required" in err


def test_run_with_a_calendar_set_up_wrong_stops_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A server that does not answer is waited for (tests/test_e2e_unreachable_at_start.py); a setting that
    # cannot work stops the start, naming it.
    example = Path(__file__).resolve().parents[1] / "practice.example.toml"
    text = example.read_text(encoding="utf-8").replace(
        '# [specialists.caldav]\n# url = "https://cloud.example.org/remote.php/dav"\n# username = "jonas"\n'
        '# password_env = "BOOKINGBOT_CALDAV_PASSWORD_JONAS"',
        '[specialists.caldav]\nurl = "http://127.0.0.1:9/dav/"\nusername = "jonas"\n'
        'password_env = "BOOKINGBOT_CALDAV_PASSWORD_JONAS"',
    )
    assert "127.0.0.1:9" in text
    practice = tmp_path / "practice.toml"
    practice.write_text(text, encoding="utf-8")
    monkeypatch.setenv("BOOKINGBOT_TELEGRAM_TOKEN", "123:abc")
    monkeypatch.delenv("BOOKINGBOT_CALDAV_PASSWORD_JONAS", raising=False)
    code = main(["run", "--config", str(practice), "--data-dir", str(tmp_path / "data"), "--caldav-port", "0"])
    assert code == 2
    err = capsys.readouterr().err
    assert "cannot start" in err and "BOOKINGBOT_CALDAV_PASSWORD_JONAS" in err


def test_smtp_settings_from_the_environment_keep_the_password_out_of_sight() -> None:
    settings = load_settings(
        env={
            "BOOKINGBOT_SMTP_HOST": "smtp.example.org",
            "BOOKINGBOT_SMTP_PORT": "465",
            "BOOKINGBOT_SMTP_SECURITY": "TLS",
            "BOOKINGBOT_SMTP_USER": "bot",
            "BOOKINGBOT_SMTP_PASSWORD": "s3cret-value",
            "BOOKINGBOT_SMTP_FROM": "bookings@example.org",
        }
    )
    assert (settings.smtp_host, settings.smtp_port, settings.smtp_security) == ("smtp.example.org", 465, "tls")
    assert settings.smtp_password == "s3cret-value" and "s3cret-value" not in repr(settings)
