"""The wheel, installed outside the checkout as a deployment installs it: lock file first, then the wheel.

Slow (a venv and ~60 packages from uv's cache or PyPI): one venv for the whole module; `-m "not slow"` skips it.
These are the Dockerfile's install steps, run in a venv because the CI machine has no Docker; uv (a test
dependency) instead of pip only because it is many times faster here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_demo import SCRIPT

ROOT = Path(__file__).resolve().parents[1]
UV = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv") or "uv"
pytestmark = pytest.mark.slow
SKIP_DIRS = {".git", ".venv", "build", "dist", "data", "demo-data", "__pycache__", ".pytest_cache", ".ruff_cache"}


def _run(*cmd: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: int = 600) -> str:
    result = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(the built wheel, a fresh venv with the locked dependencies and the wheel installed)."""
    base = tmp_path_factory.mktemp("wheel")
    # Build from a copy, so the checkout gets no build/ or egg-info folders.
    source = base / "source"
    shutil.copytree(
        ROOT, source, ignore=lambda _d, names: [n for n in names if n in SKIP_DIRS or n.endswith(".egg-info")]
    )
    # Built in isolation with the setuptools pyproject.toml asks for, as pip or uv build it for any user.
    _run(UV, "build", "--wheel", "-q", "--out-dir", base / "dist", source, cwd=base)
    (wheel,) = (base / "dist").glob("bookingbot-*.whl")
    venv = base / "venv"
    _run(UV, "venv", "-q", "--python", sys.executable, venv, cwd=base)
    env = {**os.environ, "VIRTUAL_ENV": str(venv)}
    # The Dockerfile's two steps (with pip there): the locked dependencies by hash, then the wheel alone.
    _run(UV, "pip", "install", "-q", "--require-hashes", "-r", ROOT / "requirements.lock", cwd=base, env=env)
    _run(UV, "pip", "install", "-q", "--no-deps", wheel, cwd=base, env=env)
    yield wheel, venv


def test_the_wheel_carries_the_example_the_catalogs_and_the_migrations(installed: tuple[Path, Path]) -> None:
    wheel, _venv = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "bot/practice.example.toml" in names
    for lang in ("pl", "de", "lt", "fi"):
        assert f"bot/locales/{lang}/LC_MESSAGES/bookingbot.po" in names
    assert "scheduling/migrations/env.py" in names and "scheduling/migrations/script.py.mako" in names
    assert any(n.startswith("scheduling/migrations/versions/") and "baseline" in n for n in names)
    assert not any(n.startswith(("tests/", "locales/")) for n in names)


def _env(venv: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOOKINGBOT_") and k != "PYTHONPATH"}
    return {**env, "PATH": f"{venv / 'bin'}:{env['PATH']}", "LANG": "C.UTF-8", "BOOKINGBOT_CALDAV_PORT": "0"}


def test_installed_init_and_a_scripted_demo(installed: tuple[Path, Path], tmp_path: Path) -> None:
    _wheel, venv = installed
    env = _env(venv)
    bookingbot = venv / "bin" / "bookingbot"
    assert _run(bookingbot, "--version", cwd=tmp_path, env=env).startswith("bookingbot 0.")
    out = _run(bookingbot, "init", cwd=tmp_path, env=env)
    assert "wrote practice.toml" in out
    assert "[[specialists]]" in (tmp_path / "practice.toml").read_text(encoding="utf-8")

    result = subprocess.run(
        [bookingbot, "demo", "--data-dir", tmp_path / "demo"],
        input=SCRIPT,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Your appointment is confirmed." in result.stdout
    assert (tmp_path / "demo" / "appointment.ics").is_file()
    assert "Traceback" not in result.stderr


def test_installed_package_finds_its_translations(installed: tuple[Path, Path], tmp_path: Path) -> None:
    _wheel, venv = installed
    code = (
        "import bot.i18n as i; print(i.LOCALES_DIR); print(' '.join(i.available())); "
        "print(i.gettext_for('pl')('Send request'))"
    )
    where, langs, polish = _run(venv / "bin" / "python", "-c", code, cwd=tmp_path, env=_env(venv)).splitlines()
    assert Path(where).is_relative_to(venv) and langs == "de en fi lt pl"
    assert polish != "Send request"
