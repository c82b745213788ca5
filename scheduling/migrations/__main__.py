"""Write a new revision or list them: `python -m scheduling.migrations revision -m "what changed" [--autogenerate]`."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

from alembic import command
from alembic.config import Config

from scheduling.migrations import alembic_config


def _config() -> Config:
    """The package's configuration, plus ruff over every file it writes when ruff is at hand."""
    config = alembic_config()
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff:
        config.set_section_option("post_write_hooks", "hooks", "fix, format")
        for name, options in (("fix", "check --fix --quiet"), ("format", "format --quiet")):
            config.set_section_option("post_write_hooks", f"{name}.type", "exec")
            config.set_section_option("post_write_hooks", f"{name}.executable", ruff)
            config.set_section_option("post_write_hooks", f"{name}.options", f"{options} REVISION_SCRIPT_FILENAME")
    return config


async def _autogenerate(message: str) -> None:
    """Compare the models with a scratch SQLite database at the current head and write the difference."""
    from scheduling.db import create_schema, make_engine

    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{Path(folder) / 'head.sqlite3'}")
        try:
            await create_schema(engine)
            async with engine.begin() as conn:
                await conn.run_sync(_revision, message)
        finally:
            await engine.dispose()


def _revision(connection: object, message: str) -> None:
    config = _config()
    config.attributes["connection"] = connection
    command.revision(config, message=message, autogenerate=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m scheduling.migrations", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    revision = sub.add_parser("revision", help="write a new revision chained on the head")
    revision.add_argument("-m", "--message", required=True, help="what the revision changes, in a few words")
    revision.add_argument(
        "--autogenerate", action="store_true", help="fill it with the difference between the models and the head"
    )
    sub.add_parser("heads", help="show the head revision(s); more than one means two branches to chain")
    sub.add_parser("history", help="list the revisions, newest first")
    args = parser.parse_args(argv)
    config = _config()
    if args.command == "revision" and args.autogenerate:
        asyncio.run(_autogenerate(args.message))
    elif args.command == "revision":
        command.revision(config, message=args.message)
    elif args.command == "heads":
        command.heads(config, verbose=True)
    else:
        command.history(config)


if __name__ == "__main__":
    main()
