"""Keep-alive HTTP/1.1 connections for the bot's small JSON POSTs to the Bot API.

aiohttp's client spent about 140 us of CPU per Bot API call on this machine (URL objects, header
multidicts, tracing hooks, a request and a response object), three times what writing the request and
reading the answer takes: every call is a POST of a JSON body to one origin, answered with a JSON body,
which needs little of that. Uploads still go through aiohttp (bot/telegram_http.py).
"""

from __future__ import annotations

import asyncio
import re
import ssl
from urllib.parse import urlsplit


class HttpError(ConnectionError):
    """The connection broke or the server's answer was not HTTP/1.1 we can read."""


_Origin = tuple[str, int, bool]  # host, port, TLS


# The three headers that say where an answer ends and whether its connection carries another request.
_FRAMING = re.compile(rb"\r\n(content-length|transfer-encoding|connection)[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE)


def _parse(buf: bytearray, at_eof: bool) -> tuple[int, bytes, bool] | None:
    """(status, body, keep-alive) once `buf` holds a whole response, None while more is to come."""
    start = 0
    while True:
        end = buf.find(b"\r\n\r\n", start)
        if end < 0:
            if at_eof:
                raise HttpError("connection closed before the response headers ended")
            return None
        head = bytes(buf[start:end])
        line_end = head.find(b"\r\n")
        parts = (head if line_end < 0 else head[:line_end]).split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise HttpError(f"not an HTTP/1.x status line: {head[:40]!r}")
        status = int(parts[1])
        if 100 <= status < 200:  # an interim answer (100 Continue): the real one follows
            start = end + 4
            continue
        break
    length: bytes | None = None
    chunked = False
    keep = parts[0] != b"HTTP/1.0"
    for name, value in _FRAMING.findall(head):
        name = name.lower()
        if name == b"content-length":
            length = value.strip()
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif value.strip().lower() == b"close":
            keep = False
    body_at = end + 4
    if chunked:
        body = _chunks(buf, body_at)
        if body is None:
            if at_eof:
                raise HttpError("connection closed inside a chunked body")
            return None
        return status, body, keep
    if length is not None:
        if not length.isdigit():
            raise HttpError("bad Content-Length")
        size = int(length)
        if len(buf) - body_at < size:
            if at_eof:
                raise HttpError("connection closed before the body ended")
            return None
        return status, bytes(buf[body_at : body_at + size]), keep
    if status in (204, 304):
        return status, b"", keep
    # No length given: the body runs to the end of the connection.
    return (status, bytes(buf[body_at:]), False) if at_eof else None


def _chunks(buf: bytearray, at: int) -> bytes | None:
    """The body of a chunked response starting at `at`, None while incomplete."""
    out = bytearray()
    while True:
        line_end = buf.find(b"\r\n", at)
        if line_end < 0:
            return None
        size_text = bytes(buf[at:line_end]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise HttpError("bad chunk size") from None
        at = line_end + 2
        if size == 0:
            # Trailers, if any, end with an empty line.
            return bytes(out) if buf.find(b"\r\n", at) == at or buf.find(b"\r\n\r\n", at) >= 0 else None
        if len(buf) < at + size + 2:
            return None
        out += buf[at : at + size]
        at += size + 2


class _Connection(asyncio.Protocol):
    """One connection: one request at a time, its answer collected as it arrives."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._buf = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes, bool]] | None = None
        # One timer per connection, kept across requests: each request only moves the deadline it checks (a
        # timer per request was most of the client's own cost).
        self._deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._buf += data
        self._check(at_eof=False)

    def eof_received(self) -> bool:
        self._check(at_eof=True)
        self.closed = True
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(HttpError(f"connection lost: {exc or 'closed by the server'}"))

    def _check(self, at_eof: bool) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        try:
            answer = _parse(self._buf, at_eof)
        except HttpError as exc:
            waiter.set_exception(exc)
            return
        if answer is not None:
            self._buf.clear()
            waiter.set_result(answer)

    async def exchange(self, request: bytes, within: float | None) -> tuple[int, bytes, bool]:
        """Write one request and wait for its whole answer; TimeoutError after `within` seconds."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        self._buf.clear()
        self.transport.write(request)
        if within is not None:
            self._deadline = deadline = loop.time() + within
            if self._timer is None or self._timer.when() > deadline:
                if self._timer is not None:
                    self._timer.cancel()
                self._timer = loop.call_at(deadline, self._on_timer)
        try:
            return await waiter
        finally:
            self._waiter = None
            self._deadline = None

    def _on_timer(self) -> None:
        """The request under way has timed out, or (a later request's) deadline is still ahead: wait for it."""
        self._timer = None
        waiter, deadline = self._waiter, self._deadline
        if waiter is None or waiter.done() or deadline is None:
            return
        loop = waiter.get_loop()
        if loop.time() >= deadline - 0.001:  # the loop runs timers up to its clock resolution early
            waiter.set_exception(TimeoutError())
        else:
            self._timer = loop.call_at(deadline, self._on_timer)

    def close(self) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.transport is not None:
            self.transport.close()


class Http1Pool:
    """At most `limit` keep-alive connections (over all origins), each carrying one request at a time."""

    def __init__(self, limit: int, user_agent: str, tls: ssl.SSLContext | None = None) -> None:
        self._slots = asyncio.Semaphore(limit)
        self._idle: dict[_Origin, list[_Connection]] = {}
        self._targets: dict[str, tuple[_Origin, bytes]] = {}  # url -> origin, request head up to the length
        self._user_agent = user_agent
        self._tls = tls  # None: the system's trusted CAs, made on the first https connection
        self._closed = False

    def _target(self, url: str) -> tuple[_Origin, bytes]:
        target = self._targets.get(url)
        if target is None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"not an http(s) URL: {parts.scheme}://...")
            tls = parts.scheme == "https"
            port = parts.port or (443 if tls else 80)
            host = parts.netloc.rpartition("@")[2]  # as written: an IPv6 literal keeps its brackets
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            head = (
                f"POST {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {self._user_agent}\r\n"
                "Accept: application/json\r\nContent-Type: application/json\r\nContent-Length: "
            ).encode("latin-1")
            target = ((parts.hostname, port, tls), head)
            if len(self._targets) < 1024:  # the bot calls a few dozen endpoints; a bound all the same
                self._targets[url] = target
        return target

    async def post_json(
        self,
        url: str,
        body: bytes,
        *,
        connect_timeout: float | None,
        read_timeout: float | None,
        pool_timeout: float | None,
    ) -> tuple[int, bytes]:
        """POST `body` as JSON and return the status and the response body."""
        if self._closed:
            raise RuntimeError("the connection pool is closed")
        origin, head = self._target(url)
        if self._slots.locked():
            async with asyncio.timeout(pool_timeout):
                await self._slots.acquire()
        else:
            await self._slots.acquire()  # a free slot: returns at once
        try:
            connection = await self._connection(origin, connect_timeout)
            try:
                status, answer, keep = await connection.exchange(head + b"%d\r\n\r\n" % len(body) + body, read_timeout)
            except BaseException:
                connection.close()  # a half-read answer would be taken for the next request's
                raise
            if keep and not connection.closed and not self._closed:
                self._idle.setdefault(origin, []).append(connection)
            else:
                connection.close()
            return status, answer
        finally:
            self._slots.release()

    async def _connection(self, origin: _Origin, within: float | None) -> _Connection:
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()
            if not connection.closed and connection.transport is not None and not connection.transport.is_closing():
                return connection
            connection.close()
        host, port, tls = origin
        if tls and self._tls is None:
            self._tls = ssl.create_default_context()
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(within):
            _, connection = await loop.create_connection(
                _Connection, host, port, ssl=self._tls if tls else None, server_hostname=host if tls else None
            )
        return connection

    async def close(self) -> None:
        self._closed = True
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()
