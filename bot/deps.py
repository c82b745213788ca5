"""The running bot's collaborators, reachable from every handler through the Application."""

from __future__ import annotations

from dataclasses import dataclass

from telegram.ext import Application, ContextTypes

from scheduling.booking import BookingService
from scheduling.config import Practice
from scheduling.store import Store


@dataclass
class Deps:
    practice: Practice
    store: Store
    booking: BookingService


def deps(context: ContextTypes.DEFAULT_TYPE | Application) -> Deps:
    app = context if isinstance(context, Application) else context.application
    return app.bot_data["deps"]
