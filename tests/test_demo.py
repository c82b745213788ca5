"""`bookingbot demo`: a scripted terminal chat drives the real bot, calendar and database through a booking."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from icalendar import Calendar

from bot.demo import demo_language, demo_practice, run_demo
from bot.settings import Settings
from scheduling.config import load_practice
from tests.fixtures.practice import EXAMPLE

ROOT = Path(__file__).resolve().parents[1]

# Online with Anna is always a Monday video call, so the dialog never asks for the channel; the first
# numbered day and the first time are tapped by pattern because the demo runs on the real clock.
SCRIPT = """\
/start
2
1
/tap First consultation
/tap Nobody Here
/tap Anna
/tap /\\d+/
/tap /\\d\\d:\\d\\d/
Please call me on arrival.
Jan Nowak
/contact
/tap Skip
/tap I agree
/tap Send request
/as anna
1
/as client
"""


def _after(transcript: str, marker: str) -> str:
    assert marker in transcript, transcript
    return transcript.split(marker, 1)[1]


def _events(data_dir: Path, specialist: str) -> list[Calendar]:
    """The events the embedded Radicale stored in a specialist's booking calendar, read from its folder."""
    folder = data_dir / "radicale" / "collections" / "collection-root" / specialist / "bookings"
    return [Calendar.from_ical(path.read_bytes()) for path in sorted(folder.glob("*.ics"))]


async def test_a_scripted_demo_books_and_approves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANG", "en_GB.UTF-8")
    out = io.StringIO()
    code = await run_demo(
        Settings(data_dir=tmp_path, caldav_port=0),
        load_practice(EXAMPLE),
        stdin=io.StringIO(SCRIPT + "/quit\n"),
        stdout=out,
    )
    transcript = out.getvalue()
    assert code == 0
    assert "http://127.0.0.1:" in transcript and "/anna/bookings/  user anna  password " in transcript
    assert "[client] > /start\n" in transcript  # scripted input is echoed after the prompt
    assert "[1] City centre office\n    [2] Online\n    [3] Cancel" in transcript
    assert "! no button labelled 'Nobody Here'" in transcript  # a mistake is reported, the demo goes on

    request = _after(transcript, "-- now speaking as Anna Kowalska")
    assert request.lstrip().startswith("bot: New appointment request")
    assert "Client: Jan Nowak" in request and "Phone: +48601234567" in request
    assert "Please call me on arrival." in request
    assert "[1] Approve  [2] Decline" in request

    at_client = _after(request, "-- now speaking as the client")
    assert "Your appointment is confirmed." in at_client
    ics = tmp_path / "appointment.ics"
    assert f"📎 appointment.ics ({ics.stat().st_size} bytes) saved to {ics}" in at_client
    sent = Calendar.from_ical(ics.read_bytes()).walk("VEVENT")[0]
    assert str(sent["STATUS"]) == "CONFIRMED"
    assert transcript.rstrip().endswith(f"Demo stopped. Bookings stay in {tmp_path}.")

    (stored,) = _events(tmp_path, "anna")
    event = stored.walk("VEVENT")[0]
    assert str(event["UID"]) == str(sent["UID"]) and str(event["STATUS"]) == "CONFIRMED"
    assert _events(tmp_path, "jonas") == []


def test_the_console_script_runs_the_demo_to_eof(tmp_path: Path) -> None:
    env = {**os.environ, "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1", "BOOKINGBOT_CALDAV_PORT": "0"}
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "demo", "--data-dir", str(tmp_path / "demo")],
        input=SCRIPT,  # no /quit: the end of the input ends the demo
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "bookingbot demo: Harbour Counselling" in out
    assert "Embedded CalDAV calendars" in out
    assert "New appointment request" in _after(out, "[client] > /as anna")
    assert "Your appointment is confirmed." in _after(out, "[anna] > /as client")
    assert (tmp_path / "demo" / "appointment.ics").is_file()
    assert "Demo stopped." in out
    assert "Traceback" not in result.stderr


def _get_until(url: str, want: str, auth: tuple[str, str] | None = None) -> httpx.Response:
    """GET until the body holds `want` (the outbox writes a moment after the tap) or 10 s have passed."""
    deadline = time.monotonic() + 10
    while True:
        response = httpx.get(url, auth=auth, timeout=5)
        if want in response.text or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def test_while_it_runs_the_booking_is_in_the_calendar_and_the_feed_and_ctrl_c_stops_it(
    tmp_path: Path,
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "demo", "--data-dir", str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "LANG": "C.UTF-8", "BOOKINGBOT_CALDAV_PORT": "0"},
        cwd=ROOT,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(SCRIPT)  # and keep stdin open: the demo waits for more
        proc.stdin.flush()
        deadline = time.monotonic() + 20
        seen = ""
        while "📎 appointment.ics" not in seen:
            assert time.monotonic() < deadline and proc.poll() is None, seen
            seen += proc.stdout.readline()
        uid = str(Calendar.from_ical((tmp_path / "appointment.ics").read_bytes()).walk("VEVENT")[0]["UID"])

        calendar = re.search(r"anna: (http://\S+)  user (\S+)  password (\S+)", seen)
        assert calendar, seen
        url, user, password = calendar.groups()
        response = _get_until(url, "STATUS:CONFIRMED", auth=(user, password))
        assert response.status_code == 200 and f"UID:{uid}" in response.text
        assert "STATUS:CONFIRMED" in response.text

        feed = re.search(r"anna: (http://\S+/feeds/anna/\S+\.ics)", seen)
        assert feed, seen
        response = _get_until(feed.group(1), uid)
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/calendar")
        assert f"UID:{uid}" in response.text

        proc.send_signal(signal.SIGINT)  # while the demo waits for the next line, which never comes
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Demo stopped." in out and "Traceback" not in err


def test_specialists_without_a_telegram_id_get_demo_ids() -> None:
    practice = load_practice(EXAMPLE)
    jonas = practice.specialists[1].model_copy(update={"telegram_id": 900001})
    given = practice.model_copy(update={"specialists": [practice.specialists[0], jonas]})
    demo = demo_practice(given)
    assert [s.telegram_id for s in demo.specialists] == [900002, 900001]
    assert demo.specialists[0].schedule == practice.specialists[0].schedule
    assert [s.telegram_id for s in demo_practice(practice).specialists] == [900001, 900002]


@pytest.mark.parametrize(
    ("lang", "code"), [("pl_PL.UTF-8", "pl"), ("de", "de"), ("C.UTF-8", "en"), ("POSIX", "en"), ("", "en")]
)
def test_the_demo_language_follows_lang(lang: str, code: str) -> None:
    assert demo_language({"LANG": lang}) == code


async def test_mistakes_are_explained_and_the_demo_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANG", "C")
    script = "/start\n7\n/tap /[/\n/tap\n/as nobody\n/as jonas\n/as client\n/tap Online\n/quit\n"
    out = io.StringIO()
    code = await run_demo(
        Settings(data_dir=tmp_path, caldav_port=0), load_practice(EXAMPLE), stdin=io.StringIO(script), stdout=out
    )
    transcript = out.getvalue()
    assert code == 0
    assert "! no button [7] shown" in transcript
    assert "! /[/ is not a regular expression" in transcript
    assert "! 3 buttons labelled ''" in transcript
    assert "! nobody called 'nobody': choose one of client, anna, jonas" in transcript
    assert "-- now speaking as Jonas Petraitis\n  (nothing new" in transcript
    assert "bot (edited): What is it about?" in _after(transcript, "[client] > /tap Online")


WORKSPACE_SCRIPT = """\
/as anna
/new
/tap New client
Ewa Zielińska
+48 601 555 444
/tap Skip
/tap Anna
/tap Psychotherapy
/tap City centre
/tap On site
/tap ›
/tap /\\d+/
/tap /\\d\\d:\\d\\d/
/tap ASAP
/tap Continue
/tap Save
/find Zielińska
/tap #1 Ewa
/tap Add a note
Prefers mornings.
/tap Delete
/tap Yes, delete it
"""


async def test_the_demo_specialist_runs_the_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`/as anna` books for a new client, finds the card, adds a note and (as the demo's admin) deletes it."""
    monkeypatch.setenv("LANG", "en_GB.UTF-8")
    out = io.StringIO()
    code = await run_demo(
        Settings(data_dir=tmp_path, caldav_port=0),
        load_practice(EXAMPLE),
        stdin=io.StringIO(WORKSPACE_SCRIPT + "/quit\n"),
        stdout=out,
    )
    transcript = out.getvalue()
    assert code == 0
    assert "/new books a visit for a client" in transcript  # the help names the workspace
    saved = _after(transcript, "bot (edited): Saved.")
    assert "Appointment #1" in saved and "ASAP: wants an earlier time" in saved
    found = _after(saved, "Found for “Zielińska”")
    assert "Ewa Zielińska" in found
    assert "Note saved." in found and "Prefers mornings." in found
    assert "Appointment #1 was deleted." in found
    assert "! " not in transcript.split("/as anna", 1)[1], transcript
