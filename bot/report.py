"""`bookingbot report --partner <id> --month YYYY-MM`: a partner's completed and no-show visits as CSV."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path
from typing import TextIO

from bot.settings import Settings
from scheduling.config import ConfigError, Practice
from scheduling.db import create_schema, make_engine
from scheduling.partners import SETTLEMENT_COLUMNS, month_range, settlement_rows
from scheduling.store import Store


def parse_month(text: str) -> date:
    """2026-11 -> 1 November 2026; raises ConfigError naming the option otherwise."""
    try:
        return date.fromisoformat(f"{text.strip()}-01")
    except ValueError:
        raise ConfigError([f"--month: {text!r} is not a month (use YYYY-MM, e.g. 2026-11)"]) from None


def require_partner(practice: Practice, partner_id: str) -> None:
    """Raise ConfigError naming the option unless the practice file has this partner."""
    if partner_id not in practice.partner_by_id:
        known = ", ".join(p.id for p in practice.partners) or "none configured"
        raise ConfigError([f"--partner: no partner with id {partner_id!r} (known: {known})"])


async def write_partner_report(
    settings: Settings, practice: Practice, partner_id: str, month: date, out: TextIO
) -> int:
    """Write the partner's settlement CSV for the month to `out`; returns the number of visits."""
    require_partner(practice, partner_id)
    engine = make_engine(settings.db_url)
    try:
        await create_schema(engine)
        start, end = month_range(practice, month)
        async with Store(engine).tx() as tx:
            visits = await tx.partners.visits(partner_id, start, end)
    finally:
        await engine.dispose()
    writer = csv.DictWriter(out, fieldnames=SETTLEMENT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    rows = settlement_rows(practice, visits)
    writer.writerows(rows)
    return len(rows)


def default_path(partner_id: str, month: date) -> Path:
    return Path(f"partner-{partner_id}-{month:%Y-%m}.csv")
