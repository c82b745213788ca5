"""Run the Bot API emulator as a process of its own: `python -m tgemu --port N --token T`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from tgemu.server import BotApiEmulator


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line: where to listen, the bot token and Telegram's flood limits."""
    parser = argparse.ArgumentParser(prog="python -m tgemu", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: a free one, printed)")
    parser.add_argument("--token", default="123456:TEST", help="the bot token the bot will use")
    parser.add_argument(
        "--no-flood-limits",
        action="store_true",
        help="accept any number of sends (Telegram allows about 30/s overall and 1/s per chat)",
    )
    parser.add_argument(
        "--latency", type=float, default=0.0, help="milliseconds each answer is held back, as Telegram's network would"
    )
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    """Serve until SIGINT or SIGTERM."""
    limits = {"global_per_second": None, "chat_per_second": None} if args.no_flood_limits else {}
    emulator = BotApiEmulator(args.token, args.host, args.port, latency=args.latency / 1000, **limits)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with emulator:
        print(f"Bot API emulator on {emulator.base_url.removesuffix('/bot')}", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    """Entry point of `python -m tgemu`."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(parse_args(argv)))


if __name__ == "__main__":
    main()
