"""`bookingbot report --partner <id> --month YYYY-MM`: the partner's settlement CSV of completed and no-show visits."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from pathlib import Path

import pytest

from bot.cli import main
from bot.report import write_partner_report
from tests.fixtures.partner import ANA_TG, BEN_TG, CLEO_TG, MONDAY, PartnerSite
from tests.fixtures.practice import EXAMPLE

TELEGRAM_OF = {"ana": ANA_TG, "ben": BEN_TG, "cleo": CLEO_TG}


def z(hours: int) -> str:
    return (MONDAY + timedelta(hours=hours)).isoformat().replace("+00:00", "Z")


async def test_report_lists_completed_and_no_show_visits_per_specialist(site: PartnerSite) -> None:
    people = [("Maria Kowalczyk", "INS-1"), ("Olga Wrona", "INS-2"), ("Piotr Lis", "INS-3"), ("Ewa Sowa", "INS-4")]
    booked = []
    for hours, (name, ref) in zip((5, 6, 7, 8), people, strict=True):
        resp = await site.post_booking(start=z(hours), client={"name": name, "phone": "+48601000444", "reference": ref})
        booked.append(await resp.json())
    # The client of the last one cancels in time; the other three take place (or not).
    assert (await site.http.delete(f"/api/v1/bookings/{booked[3]['id']}", headers=site.auth())).status == 200
    site.clock.now = MONDAY + timedelta(hours=12)
    runtime = site.bot.runtime
    for booking, attended in zip(booked[:3], (True, False, True), strict=True):
        async with runtime.store.tx() as tx:
            appt, _ = await tx.partners.by_public_id("insurer", booking["id"])  # type: ignore[misc]
        await runtime.booking.mark(appt.id, TELEGRAM_OF[appt.specialist_id], attended=attended)

    out = io.StringIO()
    count = await write_partner_report(runtime.settings, runtime.practice, "insurer", date(2026, 11, 1), out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert count == len(rows) == 3
    assert [(r["booking_id"], r["outcome"]) for r in sorted(rows, key=lambda r: r["time"])] == [
        (booked[0]["id"], "completed"),
        (booked[1]["id"], "no_show"),
        (booked[2]["id"], "completed"),
    ]
    assert [r["specialist_id"] for r in rows] == sorted(r["specialist_id"] for r in rows)  # grouped per specialist
    first = next(r for r in rows if r["booking_id"] == booked[0]["id"])
    assert first["date"] == "2026-11-30" and first["time"] == "13:00" and first["time_zone"] == "Europe/Warsaw"
    assert first["client_ref"] == "INS-1" and first["service"] == "Consultation" and first["minutes"] == "50"
    assert "Maria" not in out.getvalue()  # the partner settles by its own reference
    december = io.StringIO()
    assert await write_partner_report(runtime.settings, runtime.practice, "insurer", date(2026, 12, 1), december) == 0
    assert december.getvalue().splitlines() == [",".join(next(csv.reader(io.StringIO(out.getvalue()))))]
    portal = io.StringIO()
    assert await write_partner_report(runtime.settings, runtime.practice, "portal", date(2026, 11, 1), portal) == 0


PARTNER_TOML = """
[[partners]]
id = "insurer"
name = "Baltic Health Insurance"
label = "Consultation for insured clients"
key_envs = ["BOOKINGBOT_TEST_REPORT_KEY"]
services = ["first"]
"""


def test_cli_writes_the_csv_and_names_an_unknown_partner(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "practice.toml"
    config.write_text(EXAMPLE.read_text(encoding="utf-8") + PARTNER_TOML, encoding="utf-8")
    common = ["--config", str(config), "--data-dir", str(tmp_path / "data")]
    assert main(["report", "--partner", "insurer", "--month", "2026-11", *common]) == 0
    written = tmp_path / "partner-insurer-2026-11.csv"
    assert written.read_text().startswith("specialist_id,specialist,date,time,")
    assert "wrote partner-insurer-2026-11.csv: 0 visit(s)" in capsys.readouterr().out
    assert main(["report", "--partner", "nobody", "--month", "2026-11", "--out", "x.csv", *common]) == 2
    assert "no partner with id 'nobody' (known: insurer)" in capsys.readouterr().err
    assert main(["report", "--partner", "insurer", "--month", "November", "--out", "y.csv", *common]) == 2
    assert "--month: 'November' is not a month" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "y.csv").exists()
