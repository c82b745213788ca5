"""The embedded default: a Radicale server the bot runs itself, one htpasswd user per specialist."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import secrets
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote
from xml.sax.saxutils import escape

from caldav_bridge.client import CALDAV, DAV, CalDAVSetupError, Connection
from scheduling.config import Practice

log = logging.getLogger(__name__)

START_TIMEOUT = 20.0


@dataclass(frozen=True, slots=True)
class EmbeddedAccount:
    url: str
    username: str
    password: str
    calendar_url: str


class PortInUse(CalDAVSetupError):
    """Another program already listens where the embedded server should."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(f"{host}:{port} is in use by another program")
        self.host, self.port = host, port


def port_in_use(host: str, port: int) -> bool:
    """True when something listens on host:port already (a closed socket still in TIME_WAIT does not count)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def hash_password(password: str) -> str:
    """sha512-crypt, which Radicale's `autodetect` recognises; plain only if no hasher is installed."""
    try:
        from passlib.hash import sha512_crypt

        # The password is random and long: the default 656k rounds only slow every request down.
        return str(sha512_crypt.using(rounds=5000).hash(password))
    except ImportError:
        return password


def load_credentials(path: Path, usernames: list[str]) -> dict[str, str]:
    """Passwords per username, created once (file mode 0600) and extended for new specialists."""
    creds: dict[str, str] = {}
    if path.exists():
        creds = {str(k): str(v) for k, v in json.loads(path.read_text(encoding="utf-8")).items()}
    missing = [u for u in usernames if u not in creds]
    if missing or not path.exists():
        for u in missing:
            creds[u] = secrets.token_urlsafe(24)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(creds, f, indent=2)
        os.replace(tmp, path)
    os.chmod(path, 0o600)
    return creds


def write_config(root: Path, host: str, port: int, creds: dict[str, str]) -> Path:
    htpasswd = root / "users"
    fd = os.open(htpasswd, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.writelines(f"{u}:{hash_password(p)}\n" for u, p in sorted(creds.items()))
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    config = root / "config"
    config.write_text(
        "[server]\n"
        f"hosts = {bind}\n"
        "[auth]\n"
        "type = htpasswd\n"
        f"htpasswd_filename = {htpasswd}\n"
        "htpasswd_encryption = autodetect\n"
        "[rights]\n"
        "type = owner_only\n"
        "[storage]\n"
        f"filesystem_folder = {root / 'collections'}\n"
        "[logging]\n"
        "level = warning\n"
        "mask_passwords = True\n",
        encoding="utf-8",
    )
    return config


async def wait_listening(host: str, port: int, proc: asyncio.subprocess.Process | None = None) -> None:
    deadline = asyncio.get_running_loop().time() + START_TIMEOUT
    while True:
        try:
            _, writer = await asyncio.open_connection(host, port)
            writer.close()
            await writer.wait_closed()
            return
        except OSError:
            if proc is not None and proc.returncode is not None:
                raise CalDAVSetupError(f"embedded CalDAV server exited with code {proc.returncode}") from None
            if asyncio.get_running_loop().time() > deadline:
                raise CalDAVSetupError(f"embedded CalDAV server did not start on {host}:{port}") from None
            await asyncio.sleep(0.05)


async def ensure_calendar(conn: Connection, url: str, name: str) -> None:
    """MKCALENDAR unless the collection is already there."""
    resp = await conn.propfind(url, "<d:resourcetype/>")
    if resp.status == 207:
        return
    body = (
        f'<?xml version="1.0" encoding="utf-8"?><c:mkcalendar xmlns:d="{DAV}" xmlns:c="{CALDAV}">'
        f"<d:set><d:prop><d:displayname>{escape(name)}</d:displayname>"
        '<c:supported-calendar-component-set><c:comp name="VEVENT"/></c:supported-calendar-component-set>'
        "</d:prop></d:set></c:mkcalendar>"
    )
    made = await conn.request("MKCALENDAR", url, body, {"Content-Type": 'application/xml; charset="utf-8"'})
    if made.status not in (200, 201):
        raise CalDAVSetupError(f"{url}: creating the calendar answered {made.status}")


class EmbeddedCalDAV:
    """Runs `python -m radicale` with a generated config under `<data_dir>/radicale`."""

    def __init__(self, data_dir: str | Path, host: str = "127.0.0.1", port: int = 5232) -> None:
        self.root = Path(data_dir) / "radicale"
        self.host = host
        self.port = port
        self.proc: asyncio.subprocess.Process | None = None
        # Usernames whose password this start created: printed once, then only by `bookingbot calendars`.
        self.created: list[str] = []

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    async def start(self, practice: Practice) -> dict[str, EmbeddedAccount]:
        """Start the server and return an account for every specialist on the embedded calendar."""
        local = [s for s in practice.specialists if s.calendar_kind == "embedded"]
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        path = self.root / "credentials.json"
        known = set(json.loads(path.read_text(encoding="utf-8"))) if path.exists() else set()
        creds = load_credentials(path, [s.id for s in local])
        self.created = [s.id for s in local if s.id not in known]
        if self.port == 0:
            self.port = free_port(self.host)
        elif port_in_use(self.host, self.port):
            # Radicale would fail to bind, and the bot would then log in to the other program.
            raise PortInUse(self.host, self.port)
        config = write_config(self.root, self.host, self.port, creds)
        # Radicale's own messages go to a file beside its data, not into the bot's console.
        with (self.root / "radicale.log").open("ab") as server_log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "radicale",
                "--config",
                str(config),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=server_log,
                stderr=server_log,
            )
        try:
            await wait_listening(self.host, self.port, self.proc)
            accounts: dict[str, EmbeddedAccount] = {}
            for spec in local:
                base = f"{self.url}{quote(spec.id)}/"
                cal_url = f"{base}{quote(spec.caldav.booking_calendar)}/"
                conn = Connection(self.url, spec.id, creds[spec.id])
                try:
                    await ensure_calendar(conn, cal_url, spec.caldav.booking_calendar)
                finally:
                    await conn.close()
                accounts[spec.id] = EmbeddedAccount(base, spec.id, creds[spec.id], cal_url)
        except BaseException:
            await self.stop()
            raise
        log.info("embedded CalDAV server at %s (%d calendars)", self.url, len(accounts))
        return accounts

    async def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
