"""One CalDAV account: connection, calendar discovery and the raw requests the gateway needs."""

from __future__ import annotations

import asyncio
import logging
import os
import re
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import unquote, urljoin, urlsplit

from caldav.aio import AsyncDAVClient
from caldav.lib import error as dav_error
from lxml import etree

from scheduling.calendar import CalendarUnavailable
from scheduling.config import Specialist

log = logging.getLogger(__name__)

# The raw HTTP answers of the request under way (see Connection._send): caldav parses XML before we see it.
_ANSWERS: ContextVar[list[Any] | None] = ContextVar("caldav_answers", default=None)

DAV = "DAV:"
CALDAV = "urn:ietf:params:xml:ns:caldav"
CS = "http://calendarserver.org/ns/"
NS = {"d": DAV, "c": CALDAV, "cs": CS}


class CalDAVSetupError(CalendarUnavailable):
    """The account cannot be used as configured: wrong URL, refused credentials or a missing calendar."""


class CalDAVAuthError(CalDAVSetupError):
    """The server refused the username/password."""


class CalendarNotFound(CalDAVSetupError):
    """A configured calendar does not exist on the server."""


@dataclass(frozen=True, slots=True)
class Account:
    """Where and as whom to connect; calendar names/urls to use for booking and busy data."""

    url: str
    username: str
    password: str
    booking_calendar: str = "bookings"
    busy_calendars: tuple[str, ...] = ()
    bearer: BearerSource | None = None  # OAuth instead of a password (Google's CalDAV endpoint)


class BearerSource(Protocol):
    """Hands out a current OAuth access token; `renew=True` after the server refused the last one."""

    async def token(self, *, renew: bool = False) -> str: ...


@dataclass(frozen=True, slots=True)
class CalendarInfo:
    name: str
    url: str


@dataclass(slots=True)
class Response:
    """The parts of an HTTP answer the bridge looks at."""

    status: int
    headers: Any
    body: bytes
    tree: Any

    @property
    def etag(self) -> str | None:
        return self.headers.get("ETag") or self.headers.get("etag")


def account_for(spec: Specialist) -> Account:
    """Build the Account from a specialist's [caldav] section; the password comes from the environment."""
    cfg = spec.caldav
    if not cfg.url:
        raise CalDAVSetupError(f"specialist {spec.id}: no caldav.url configured")
    password = os.environ.get(cfg.password_env, "") if cfg.password_env else ""
    if cfg.password_env and not password:
        raise CalDAVSetupError(
            f"specialist {spec.id}: environment variable {cfg.password_env} (caldav password) is not set"
        )
    return Account(cfg.url, cfg.username, password, cfg.booking_calendar, tuple(cfg.busy_calendars))


class Connection:
    """An authenticated session to one CalDAV server that counts every HTTP request it sends."""

    def __init__(
        self, url: str, username: str, password: str, *, timeout: float = 10.0, bearer: BearerSource | None = None
    ) -> None:
        self.url = url if url.endswith("/") else url + "/"
        self.username = username
        self.timeout = timeout
        self.requests = 0
        self.bearer = bearer
        self._client = AsyncDAVClient(
            url=self.url,
            username=username or None,
            password=password or None,
            # Pinning basic saves the 401 round trip caldav would otherwise make on every new session.
            auth_type="basic" if password else None,
            timeout=int(timeout) or 1,
            enable_rfc6764=False,
            # Google answers 429 with Retry-After: short waits are slept here, longer ones go back to the outbox.
            rate_limit_handle=True,
            rate_limit_max_sleep=max(1, int(timeout) // 2),
        )
        self._wrapped: Any = None

    def _count_http(self) -> None:
        session = self._client.session
        if self._wrapped is session:
            return
        send = session.request

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.requests += 1
            response = await send(*args, **kwargs)
            if (answers := _ANSWERS.get()) is not None:
                answers.append(response)
            return response

        session.request = counted
        self._wrapped = session

    async def close(self) -> None:
        await self._client.close()

    def absolute(self, href: str) -> str:
        return urljoin(self.url, href)

    async def request(self, method: str, url: str, body: str = "", headers: dict[str, str] | None = None) -> Response:
        """Send one request; transport failures, timeouts and 5xx become CalendarUnavailable."""
        if self.bearer is None:
            return await self._send(method, url, body, headers)
        try:
            return await self._send(method, url, body, {**(headers or {}), **await self._authorization()})
        except CalDAVAuthError:
            # An access token can die before its stated expiry (revoked, rotated): renew it once.
            renewed = await self._authorization(renew=True)
            return await self._send(method, url, body, {**(headers or {}), **renewed})

    async def _authorization(self, *, renew: bool = False) -> dict[str, str]:
        assert self.bearer is not None
        return {"Authorization": f"Bearer {await self.bearer.token(renew=renew)}"}

    async def _send(self, method: str, url: str, body: str, headers: dict[str, str] | None) -> Response:
        self._count_http()
        where = urlsplit(url)._replace(query="", fragment="").geturl()
        answers: list[Any] = []
        token = _ANSWERS.set(answers)
        try:
            r = await asyncio.wait_for(self._client.request(url, method, body, headers or {}), self.timeout + 1)
        except etree.XMLSyntaxError:
            # One object with a character XML forbids (a U+FFFE the server echoed) spoils the whole document
            # for caldav's parser: the multistatus is read response by response instead (see `multistatus`).
            if not answers or answers[-1].status_code != 207:
                raise CalendarUnavailable(f"{where}: {method} answered XML that does not parse") from None
            return Response(207, answers[-1].headers, answers[-1].content, None)
        except dav_error.AuthorizationError as exc:
            status = getattr(exc, "status", None)
            if status == 403 and exc.preconditions:
                # A DAV precondition (e.g. an expired sync token) is an answer, not a refusal.
                return Response(403, {}, exc.body if isinstance(exc.body, bytes) else b"", None)
            if status == 403:
                raise CalDAVSetupError(
                    f"{where}: user {self.username!r} may not access this URL (403 {exc.reason}); check the URL"
                ) from None
            raise CalDAVAuthError(
                f"{where}: the server refused the credentials of user {self.username!r} ({exc.reason})"
            ) from None
        except TimeoutError:
            raise CalendarUnavailable(f"{where}: no answer within {self.timeout:g} s") from None
        except CalendarUnavailable:
            raise
        except Exception as exc:
            raise CalendarUnavailable(f"{where}: {method} failed: {type(exc).__name__}: {exc}") from None
        finally:
            _ANSWERS.reset(token)
        if r.status >= 500:
            raise CalendarUnavailable(f"{where}: {method} answered {r.status} {r.reason}")
        raw = r._raw_body or (r._raw if isinstance(r._raw, bytes) else str(r._raw or "").encode())
        return Response(r.status, r.headers, raw, r.tree)

    async def propfind(self, url: str, props: str, depth: int = 0) -> Response:
        body = f'<?xml version="1.0" encoding="utf-8"?><d:propfind {_XMLNS}><d:prop>{props}</d:prop></d:propfind>'
        return await self.request(
            "PROPFIND",
            url,
            body,
            {"Depth": str(depth), "Content-Type": 'application/xml; charset="utf-8"'},
        )

    async def report(self, url: str, body: str, depth: int | None = 1) -> Response:
        headers = {"Content-Type": 'application/xml; charset="utf-8"'}
        if depth is not None:
            headers["Depth"] = str(depth)
        return await self.request("REPORT", url, body, headers)


_XMLNS = f'xmlns:d="{DAV}" xmlns:c="{CALDAV}" xmlns:cs="{CS}"'


_RESPONSE = re.compile(rb"<(?:[\w.-]+:)?response[\s>].*?</(?:[\w.-]+:)?response\s*>", re.S)
_ROOT = re.compile(rb"<(?:[\w.-]+:)?multistatus\b([^>]*)>")
# Characters XML 1.0 does not allow, as some servers echo them from what a client stored.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _responses(body: bytes) -> list[Any]:
    """The <response>s of a broken multistatus, each parsed alone; CalendarUnavailable when it is no multistatus."""
    # A response that does not parse is read again without the characters XML forbids; the others never depend on it.
    root = _ROOT.search(body)
    if root is None:
        raise CalendarUnavailable("the server answered something that is not a multistatus document")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    out = []
    for match in _RESPONSE.finditer(body):
        wrapped = b"<multistatus " + root[1].strip().rstrip(b"/") + b">" + match[0] + b"</multistatus>"
        try:
            tree = etree.fromstring(wrapped, parser)
        except etree.XMLSyntaxError:
            cleaned = _NOT_XML.sub("", wrapped.decode("utf-8", "replace")).encode("utf-8")
            try:
                tree = etree.fromstring(cleaned, parser)
            except etree.XMLSyntaxError:
                log.warning("a response of a multistatus answer does not parse; left out")
                continue
        out.extend(tree)
    return out


def multistatus(resp: Response) -> list[tuple[str, int, dict[str, Any]]]:
    """(href, status, {clark tag: element}) per <response>, with props from 2xx propstats only."""
    if resp.tree is None:
        if not resp.body.strip():
            return []
        responses = [r for r in _responses(resp.body) if r.tag == f"{{{DAV}}}response"]
    else:
        responses = list(resp.tree.iterfind("d:response", NS))
    out: list[tuple[str, int, dict[str, Any]]] = []
    for r in responses:
        href = unquote(r.findtext("d:href", "", NS).strip())
        status = _status(r.findtext("d:status", None, NS))
        props: dict[str, Any] = {}
        for ps in r.iterfind("d:propstat", NS):
            if _status(ps.findtext("d:status", None, NS)) // 100 != 2:
                continue
            for prop in ps.iterfind("d:prop", NS):
                for child in prop:
                    props[child.tag] = child
        out.append((href, status, props))
    return out


def _status(text: str | None) -> int:
    if not text:
        return 200
    parts = text.split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 200


def text_of(props: dict[str, Any], tag: str) -> str | None:
    el = props.get(tag)
    return None if el is None or el.text is None else el.text.strip()


def _href_in(props: dict[str, Any], tag: str) -> str | None:
    el = props.get(tag)
    if el is None:
        return None
    h = el.findtext("d:href", None, NS)
    return h.strip() if h else None


def _path_key(url: str) -> str:
    return unquote(urlsplit(url).path).rstrip("/")


async def discover(conn: Connection) -> list[CalendarInfo]:
    """Calendars of the account at conn.url (server root, principal, home set or a calendar itself)."""
    props = "<d:current-user-principal/><c:calendar-home-set/><d:resourcetype/><d:displayname/>"
    resp = await conn.propfind(conn.url, props)
    if resp.status in (401, 403):
        raise CalDAVAuthError(f"{conn.url}: the server refused the credentials of user {conn.username!r}")
    if resp.status == 404:
        raise CalDAVSetupError(f"{conn.url}: not found (check the CalDAV URL)")
    if resp.status != 207:
        raise CalDAVSetupError(f"{conn.url}: does not look like a CalDAV server (PROPFIND {resp.status})")
    rows = multistatus(resp)
    if not rows:
        raise CalDAVSetupError(f"{conn.url}: does not look like a CalDAV server (empty PROPFIND answer)")
    _, _, top = rows[0]
    rtype = top.get(f"{{{DAV}}}resourcetype")
    if rtype is not None and rtype.find("c:calendar", NS) is not None:
        home = conn.absolute("..")
    elif home_href := _href_in(top, f"{{{CALDAV}}}calendar-home-set"):
        home = conn.absolute(home_href)
    elif principal := _href_in(top, f"{{{DAV}}}current-user-principal"):
        presp = await conn.propfind(conn.absolute(principal), "<c:calendar-home-set/>")
        prow = multistatus(presp) if presp.status == 207 else []
        home_href = _href_in(prow[0][2], f"{{{CALDAV}}}calendar-home-set") if prow else None
        home = conn.absolute(home_href or principal)
    else:
        home = conn.url
    resp = await conn.propfind(home, "<d:resourcetype/><d:displayname/>", depth=1)
    if resp.status != 207:
        raise CalDAVSetupError(f"{home}: cannot list calendars (PROPFIND {resp.status})")
    found: list[CalendarInfo] = []
    for href, _, p in multistatus(resp):
        rt = p.get(f"{{{DAV}}}resourcetype")
        if rt is None or rt.find("c:calendar", NS) is None:
            continue
        url = conn.absolute(href)
        name = text_of(p, f"{{{DAV}}}displayname") or _path_key(url).rsplit("/", 1)[-1]
        found.append(CalendarInfo(name, url if url.endswith("/") else url + "/"))
    return found


def pick(calendars: list[CalendarInfo], wanted: str, where: str) -> CalendarInfo:
    """The calendar whose display name, last path segment or URL is `wanted`; a clear error otherwise."""
    w = wanted.strip()
    for cal in calendars:
        if cal.name == w:
            return cal
    key = _path_key(w)
    for cal in calendars:
        path = _path_key(cal.url)
        if path == key or path.rsplit("/", 1)[-1] == key.rsplit("/", 1)[-1] == w.strip("/"):
            return cal
    listing = ", ".join(f"{c.name!r} ({c.url})" for c in calendars) or "none"
    raise CalendarNotFound(f"{where}: calendar {wanted!r} not found; calendars found: {listing}")


async def list_calendars(
    url: str, username: str, password: str, *, request_timeout: float = 10.0
) -> list[tuple[str, str]]:
    """(display name, url) of every calendar of the account, for `bookingbot check`."""
    conn = Connection(url, username, password, timeout=request_timeout)
    try:
        return [(c.name, c.url) for c in await discover(conn)]
    finally:
        await conn.close()


def xml_text(tree: Any) -> str:
    return etree.tostring(tree, encoding="unicode")
