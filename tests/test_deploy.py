"""Deployment files, read as the tools would read them (no Docker or systemd on the CI machine).

The Dockerfile's install steps themselves (the lock by hash, then the wheel) run in tests/test_wheel.py.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from aiohttp import web

from tests.fixtures.caldav import free_port

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of each Dockerfile instruction, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text(encoding="utf-8"))
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def final_stage() -> list[tuple[str, str]]:
    steps = dockerfile()
    last_from = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    return steps[last_from:]


def test_dockerfile_builds_on_slim_python_3_11_in_every_stage() -> None:
    bases = [args.split()[0] for op, args in dockerfile() if op == "FROM"]
    assert bases and all(re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", base) for base in bases), bases


def test_container_runs_the_console_script_as_a_non_root_user_on_a_data_volume() -> None:
    stage = final_stage()
    ops = dict(stage)
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert json.loads(ops["ENTRYPOINT"]) == ["bookingbot"] and "bookingbot" in scripts
    assert json.loads(ops["CMD"]) == ["run"]
    assert ops["USER"] not in ("root", "0")
    assert any("useradd" in args and ops["USER"] in args for op, args in stage if op == "RUN")
    assert json.loads(ops["VOLUME"]) == ["/data"]
    assert "BOOKINGBOT_DATA_DIR=/data" in ops["ENV"].split()
    # The user switch comes after every install step, so nothing runs as root at run time.
    order = [op for op, _ in stage]
    assert order.index("USER") > max(i for i, op in enumerate(order) if op == "RUN")


def test_container_installs_from_the_lock_file_by_hash_and_the_wheel_without_dependencies() -> None:
    runs = [args for op, args in final_stage() if op == "RUN"]
    assert any("pip install --require-hashes -r /tmp/requirements.lock" in args for args in runs)
    assert any("pip install --no-deps /tmp/wheels/" in args for args in runs)
    assert ("COPY", "requirements.lock /tmp/requirements.lock") in final_stage()


class _Health:
    """A stand-in for the bot's web endpoints: /healthz answers with the status we set."""

    status = 200

    async def handler(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok" if self.status == 200 else "error"}, status=self.status)


@pytest.fixture
async def health_server() -> AsyncIterator[tuple[_Health, int]]:
    state, port = _Health(), free_port()
    app = web.Application()
    app.router.add_get("/healthz", state.handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield state, port
    finally:
        await runner.cleanup()


async def test_healthcheck_command_asks_healthz_on_the_listen_port(health_server: tuple[_Health, int]) -> None:

    state, port = health_server
    args = dict(final_stage())["HEALTHCHECK"]
    assert re.search(r"--interval=\d+s", args) and re.search(r"--timeout=\d+s", args)
    command = json.loads(args.split(" CMD ", 1)[1])
    assert command[0] == "python"
    env = {"BOOKINGBOT_LISTEN": f"0.0.0.0:{port}", "PATH": ""}

    async def exit_code() -> int:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, *command[1:], env=env, stderr=asyncio.subprocess.DEVNULL
        )
        return await proc.wait()

    assert await exit_code() == 0
    state.status = 503
    assert await exit_code() != 0


def test_compose_runs_the_bot_with_postgresql_and_keeps_the_data() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    bot, db = compose["services"]["bot"], compose["services"]["db"]
    assert bot["build"] == "." and bot["env_file"] == ".env"
    assert bot["environment"]["BOOKINGBOT_DATABASE_URL"].startswith("postgresql://bookingbot:")
    assert "@db:5432/bookingbot" in bot["environment"]["BOOKINGBOT_DATABASE_URL"]
    assert bot["depends_on"]["db"]["condition"] == "service_healthy"
    assert "bot-data:/data" in bot["volumes"] and "./practice.toml:/config/practice.toml:ro" in bot["volumes"]
    assert db["image"].startswith("postgres:") and "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert set(compose["volumes"]) == {"bot-data", "db-data"}
    text = (ROOT / "compose.yaml").read_text(encoding="utf-8")
    assert "# proxy:" in text and "BOOKINGBOT_WEBHOOK_URL" in text  # the webhook option, commented


def unit() -> dict[str, list[str]]:
    """`Key=value` lines of the systemd unit (keys may repeat)."""
    values: dict[str, list[str]] = {}
    for line in (DEPLOY / "bookingbot.service").read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith(("#", ";")):
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def test_systemd_unit_runs_the_bot_as_its_own_user_hardened() -> None:
    values = unit()
    assert shlex.split(values["ExecStart"][0])[1:] == ["run"]
    assert shlex.split(values["ExecStart"][0])[0].endswith("/bin/bookingbot")
    assert values["User"] == ["bookingbot"] and values["Restart"] == ["on-failure"]
    assert values["EnvironmentFile"] and values["WorkingDirectory"] == ["/var/lib/bookingbot"]
    assert "BOOKINGBOT_DATA_DIR=/var/lib/bookingbot" in values["Environment"]
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert values[key] == [value], key


@pytest.mark.skipif(not Path("/usr/bin/systemd-analyze").exists(), reason="systemd-analyze not installed")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    # The same unit with this machine's console script, as verify checks that ExecStart exists.
    script = Path(sys.executable).parent / "bookingbot"
    text = (DEPLOY / "bookingbot.service").read_text(encoding="utf-8")
    path = tmp_path / "bookingbot.service"
    path.write_text(text.replace("/opt/bookingbot/bin/bookingbot", str(script)), encoding="utf-8")
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(path)], capture_output=True, text=True, check=False
    )
    problems = [line for line in result.stderr.splitlines() if str(path) in line or "bookingbot" in line]
    assert not [p for p in problems if "Unknown key" in p or "Failed to parse" in p or "Invalid" in p], problems


@pytest.mark.parametrize("snippet", ["Caddyfile", "nginx.conf"])
def test_proxy_snippets_forward_the_webhook_the_feeds_and_the_calendar_server(snippet: str) -> None:
    text = (DEPLOY / snippet).read_text(encoding="utf-8")
    assert "/telegram" in text and "/feeds/" in text
    assert "/oauth/callback" in text and "/api/v1/" in text  # sign-in callbacks and the partner API
    if snippet == "Caddyfile":
        # Caddy runs a bare `respond` before any `reverse_proxy`: on the bot's host each lives in a handle block.
        bot_host = text.split("bot.example.org {", 1)[1].split("\n}", 1)[0]
        assert not re.findall(r"^\t(?:respond|reverse_proxy)\b", bot_host, flags=re.M)
    assert "127.0.0.1:8080" in text and "127.0.0.1:5232" in text
    assert "/healthz" not in re.sub(r"#.*", "", text)  # health stays internal
