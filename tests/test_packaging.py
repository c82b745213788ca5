"""Packaging facts a deployment relies on: the lock file, the licence, the command line's --version and --help."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bot.cli import SUBCOMMANDS, Subcommand, build_parser, main, package_version
from bot.settings import ENV

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def locked_versions() -> dict[str, str]:
    text = (ROOT / "requirements.lock").read_text(encoding="utf-8")
    return {canonicalize_name(m[1]): m[2] for m in re.finditer(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)", text, re.M)}


def test_every_dependency_is_locked_within_its_range() -> None:
    # The full check (re-resolving against PyPI) is `.ci/lock --check` in CI; this one needs no network.
    locked = locked_versions()
    for line in PYPROJECT["project"]["dependencies"]:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        assert name in locked, f"{req.name} is in pyproject.toml but not in requirements.lock: run .ci/lock"
        assert req.specifier.contains(locked[name], prereleases=True), f"{name}=={locked[name]} outside {req}"


def test_every_locked_package_has_hashes() -> None:
    text = (ROOT / "requirements.lock").read_text(encoding="utf-8")
    blocks = re.split(r"\n(?=[A-Za-z0-9_.-]+==)", text.split("\n", 2)[2])
    # One block per pin; a package may be pinned twice, for different Python versions (markers).
    assert {canonicalize_name(block.split("==")[0]) for block in blocks} == set(locked_versions())
    assert all("--hash=sha256:" in block for block in blocks)


def test_licence_is_the_one_pyproject_names() -> None:
    assert PYPROJECT["project"]["license"] == "AGPL-3.0-or-later"
    licence = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert licence.lstrip().startswith("GNU AFFERO GENERAL PUBLIC LICENSE\n                       Version 3")
    assert "13. Remote Network Interaction; Use with the GNU General Public License." in licence


def test_no_data_files_are_committed() -> None:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert not [f for f in files if f.endswith((".db", ".sqlite3", ".db-wal"))]
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").split()
    assert {"data/", "demo-data/", ".env"} <= set(ignored)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out == f"bookingbot {package_version()}\n"
    assert package_version() == PYPROJECT["project"]["version"]


def _sub_help(name: str) -> str:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return action.choices[name].format_help()  # type: ignore[index]


@pytest.mark.parametrize("command", SUBCOMMANDS, ids=lambda c: c.name)
def test_each_subcommand_help_describes_it_and_shows_only_its_options(command: Subcommand) -> None:
    text = " ".join(_sub_help(command.name).split())
    first_line = " ".join((command.func.__doc__ or "").split("\n")[0].split())
    assert first_line and first_line in text
    options = set(re.findall(r"--[a-z][a-z-]+", text))
    own = {f"--{name.replace('_', '-')}" for name in command.settings}
    assert own <= options
    others = {f"--{name.replace('_', '-')}" for name in ENV} - own
    if command.name == "init":
        others.discard("--config")  # init's own --config: where to write the file
    assert not options & others, f"{command.name} --help shows options of other commands: {options & others}"
    for name in command.settings:
        assert f"${ENV[name]} (default:" in text


def test_demo_help_names_its_own_defaults() -> None:
    text = " ".join(_sub_help("demo").split())
    assert "--data-dir VALUE $BOOKINGBOT_DATA_DIR (default: demo-data)" in text
    assert "--token" not in text and "--webhook-url" not in text
