"""End to end through `bookingbot run` as a real process: Telegram and one specialist's calendar server are
unreachable when it starts. It says so in one line each, without a traceback, waits for Telegram with backoff,
and once Telegram answers it serves: /healthz says degraded and the clients are answered."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import httpx

from caldav_bridge.embedded import free_port
from tests.test_serve import practice_file
from tgemu import BotApiEmulator

JONAS_CALDAV = (
    '# [specialists.caldav]\n# url = "https://cloud.example.org/remote.php/dav"\n# username = "jonas"\n'
    '# password_env = "BOOKINGBOT_CALDAV_PASSWORD_JONAS"'
)


async def read_until(proc: asyncio.subprocess.Process, seen: list[str], text: str, timeout: float = 30) -> None:  # noqa: ASYNC109
    """Collect the process's output lines until one contains `text`."""
    assert proc.stdout is not None
    async with asyncio.timeout(timeout):
        while not any(text in line for line in seen):
            line = await proc.stdout.readline()
            assert line, "the process ended:\n" + "".join(seen)
            seen.append(line.decode())


async def test_run_waits_for_telegram_and_starts_without_an_unreachable_calendar(tmp_path: Path) -> None:
    telegram_port, caldav_port = free_port(), free_port()  # nothing listens on either yet
    config = practice_file(tmp_path)
    text = config.read_text(encoding="utf-8")
    assert JONAS_CALDAV in text
    config.write_text(
        text.replace(
            JONAS_CALDAV,
            f'[specialists.caldav]\nurl = "http://127.0.0.1:{caldav_port}/dav/"\nusername = "jonas"\n'
            'password_env = "BOOKINGBOT_CALDAV_PASSWORD_JONAS"',
        ),
        encoding="utf-8",
    )
    emulator = BotApiEmulator(port=telegram_port)
    listen = f"127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "BOOKINGBOT_TELEGRAM_TOKEN": emulator.token,
        "BOOKINGBOT_TELEGRAM_API_URL": f"http://127.0.0.1:{telegram_port}",
        "BOOKINGBOT_CONFIG": str(config),
        "BOOKINGBOT_DATA_DIR": str(tmp_path / "data"),
        "BOOKINGBOT_CALDAV_PORT": "0",
        "BOOKINGBOT_CALDAV_PASSWORD_JONAS": "pw",
        "BOOKINGBOT_LISTEN": listen,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        "run",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    seen: list[str] = []
    try:
        await read_until(proc, seen, "calendar of specialist jonas unreachable at start")
        await read_until(proc, seen, "does not answer")
        await asyncio.sleep(2.5)  # long enough for two more tries: each is quiet
        assert proc.returncode is None

        await emulator.start()
        try:
            async with httpx.AsyncClient() as http:
                async with asyncio.timeout(30):
                    while True:
                        try:
                            health = await http.get(f"http://{listen}/healthz")
                            break
                        except httpx.TransportError:
                            await asyncio.sleep(0.1)
            assert health.status_code == 200 and health.json()["status"] == "degraded"
            client = emulator.user(4242, "Ola")
            await client.send("/start")
            assert client.messages and client.last.from_bot
        finally:
            proc.send_signal(signal.SIGTERM)
            rest, _ = await asyncio.wait_for(proc.communicate(), 30)
            await emulator.stop()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    output = "".join(seen) + rest.decode()
    assert proc.returncode == 0, output
    assert "Traceback" not in output
    assert sum("Telegram at" in line and "does not answer" in line for line in output.splitlines()) == 1, output
    assert emulator.token not in output
