"""`bookingbot run` as a real process: long polling, webhook mode, health endpoint, graceful SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from caldav_bridge.embedded import free_port
from tests.fixtures.practice import EXAMPLE
from tgemu import BotApiEmulator

SECRET = "s3cret-value-for-the-webhook-0123456789"  # 32 characters at least


def practice_file(tmp_path: Path) -> Path:
    text = EXAMPLE.read_text(encoding="utf-8").replace("telegram_id = 0", "telegram_id = 9001", 1)
    path = tmp_path / "practice.toml"
    path.write_text(text.replace("telegram_id = 0", "telegram_id = 9002"), encoding="utf-8")
    return path


@pytest_asyncio.fixture
async def run_bot(tmp_path: Path, emulator: BotApiEmulator) -> AsyncIterator:  # type: ignore[type-arg]
    procs: list[asyncio.subprocess.Process] = []

    async def start(**env: str) -> tuple[asyncio.subprocess.Process, str]:
        listen = f"127.0.0.1:{free_port()}"
        environ = {
            **os.environ,
            "BOOKINGBOT_TELEGRAM_TOKEN": emulator.token,
            "BOOKINGBOT_TELEGRAM_API_URL": emulator.base_url.removesuffix("/bot"),
            "BOOKINGBOT_CONFIG": str(practice_file(tmp_path)),
            "BOOKINGBOT_DATA_DIR": str(tmp_path / "data"),
            "BOOKINGBOT_CALDAV_PORT": "0",
            "BOOKINGBOT_LISTEN": listen,
            **env,
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot.cli",
            "run",
            env=environ,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        procs.append(proc)
        async with httpx.AsyncClient() as http:
            for _ in range(300):
                try:
                    if (await http.get(f"http://{listen}/healthz")).status_code == 200:
                        return proc, listen
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        if proc.returncode is None:
            proc.kill()
        output = (await proc.communicate())[0].decode()
        raise AssertionError(f"bookingbot run did not come up:\n{output}")

    yield start
    for proc in procs:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def stop(proc: asyncio.subprocess.Process) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    output, _ = await asyncio.wait_for(proc.communicate(), 20)
    return proc.returncode or 0, output.decode()


async def test_long_polling_answers_and_stops_cleanly_on_sigterm(run_bot, emulator: BotApiEmulator) -> None:  # type: ignore[no-untyped-def]
    token = "health-token-of-this-test-0123456789abcdef"
    proc, listen = await run_bot(BOOKINGBOT_HEALTH_TOKEN=token)
    client = emulator.user(1001, "Jan")
    await client.send("/start")
    await client.wait_for(lambda u: any("Where would you like to meet?" in m.text for m in u.messages), timeout=10)
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"http://{listen}/healthz")).json() == {"status": "ok"}  # anyone: the status only
        health = (await http.get(f"http://{listen}/healthz", headers={"Authorization": f"Bearer {token}"})).json()
    assert health["status"] == "ok" and health["database"] == "ok"
    code, output = await stop(proc)
    assert code == 0, output
    assert "stopping" in output
    # A first start prints the passwords it created; feed addresses only `bookingbot calendars` prints.
    assert "Embedded CalDAV calendars" in output and "user anna  password " in output
    assert "/feeds/anna/" not in output and "bookingbot calendars" in output
    assert emulator.token.split(":")[1] not in output  # the token never reaches the log


async def test_webhook_mode_checks_the_secret(run_bot, emulator: BotApiEmulator) -> None:  # type: ignore[no-untyped-def]
    # Telegram posts to the public HTTPS address; a reverse proxy hands it to the listen address.
    public = "https://bot.example.org/telegram"
    proc, listen = await run_bot(BOOKINGBOT_WEBHOOK_URL=public, BOOKINGBOT_WEBHOOK_SECRET=SECRET)
    assert emulator.webhook_url == public
    hook = f"http://{listen}/telegram"
    client = emulator.user(1002, "Ola")
    update = {
        "update_id": 1,
        "message": {
            "message_id": 1,
            "date": 0,
            "chat": {"id": 1002, "type": "private", "first_name": "Ola"},
            "from": client.profile,
            "text": "/start",
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        },
    }
    await client.send("hello", wait=False)  # opens the chat on the emulator's side
    async with httpx.AsyncClient() as http:
        refused = await http.post(hook, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"})
        accepted = await http.post(
            hook,
            content=json.dumps(update),
            headers={"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"},
        )
    assert refused.status_code == 403 and accepted.status_code == 200
    await client.wait_for(lambda u: any("Where would you like to meet?" in m.text for m in u.messages), timeout=10)
    code, output = await stop(proc)
    assert code == 0, output


async def test_missing_token_stops_the_start_naming_the_setting(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOOKINGBOT_")}
    env["BOOKINGBOT_CONFIG"] = str(practice_file(tmp_path))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "run", env=env, stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate()
    assert proc.returncode == 2 and b"BOOKINGBOT_TELEGRAM_TOKEN" in err


# What a bot on SQLite loads: its modules, and the upserts it builds on first use.
_SQLITE_BOT = """
import sys
import bot.local, bot.serve
from scheduling.db import ClientRow, dialect_insert
dialect_insert("sqlite", ClientRow.__table__)
print("sqlalchemy.dialects.postgresql" in sys.modules)
"""


async def test_a_bot_on_sqlite_does_not_load_the_postgresql_dialect() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _SQLITE_BOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert (proc.returncode, out.decode().strip()) == (0, "False"), err.decode()


# Four threads allocate at once after run_loop's arena limit; glibc's malloc_info lists the arenas ("heaps").
_ARENAS = """
import ctypes, sys, tempfile, threading
from bot.serve import glibc, limit_malloc_arenas
libc = glibc()
if libc is None:
    sys.exit(print("not glibc"))
limit_malloc_arenas()
allocated, done = threading.Barrier(5), threading.Event()
def allocate():
    kept = bytearray(100_000)  # from the thread's arena: below the size malloc maps on its own
    allocated.wait()
    done.wait()
threads = [threading.Thread(target=allocate) for _ in range(4)]
for thread in threads:
    thread.start()
allocated.wait()
libc.fopen.restype = ctypes.c_void_p
with tempfile.NamedTemporaryFile() as info:
    out = ctypes.c_void_p(libc.fopen(info.name.encode(), b"w"))
    libc.malloc_info(0, out)
    libc.fclose(out)
    print(info.read().count(b"<heap nr="))
done.set()
"""


async def test_the_bot_keeps_to_two_malloc_arenas_however_many_threads_allocate() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MALLOC_ARENA_MAX", "GLIBC_TUNABLES")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _ARENAS, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    if out.strip() == b"not glibc":
        pytest.skip("glibc's malloc only")
    assert int(out) == 2


pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
