"""The HTTP client PTB talks to the Bot API with: aiohttp, already the bot's web stack.

PTB's default client (httpx) cost about a quarter of the bot's CPU per update in the benchmark's
profile (benchmarks/README.md); aiohttp's client does the same work for less. Behaviour follows PTB's
own HTTPXRequest: the same timeouts, TimedOut for a timeout, NetworkError for anything else that
stopped the request, form fields and multipart uploads.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

_DEFAULT = type(BaseRequest.DEFAULT_NONE)  # PTB's "not given": use the configured timeout


def _given(value: object, default: float | None) -> float | None:
    return default if isinstance(value, _DEFAULT) else value  # type: ignore[return-value]


_JSON = {"Content-Type": "application/json"}


class AiohttpRequest(BaseRequest):
    """A PTB request backend on one aiohttp session with a bounded connection pool."""

    def __init__(
        self,
        connection_pool_size: int = 1,
        read_timeout: float | None = 5.0,
        write_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        pool_timeout: float | None = 1.0,
        media_write_timeout: float | None = 20.0,
    ) -> None:
        self._pool_size = connection_pool_size
        self._timeouts = {"read": read_timeout, "write": write_timeout, "connect": connect_timeout}
        self._pool_timeout = pool_timeout
        self._media_write_timeout = media_write_timeout
        self._session: aiohttp.ClientSession | None = None
        # Each call passes the same few timeout combinations: built once, not per call.
        self._timeout_cache: dict[tuple[float | None, ...], aiohttp.ClientTimeout] = {}

    @staticmethod
    def parse_json_payload(payload: bytes) -> dict[str, Any]:
        """Telegram's answer, parsed by orjson (PTB's own hook for this); what orjson refuses, PTB parses as before."""
        try:
            return orjson.loads(payload)
        except orjson.JSONDecodeError:
            return BaseRequest.parse_json_payload(payload)  # invalid UTF-8 replaced, or TelegramError

    @property
    def read_timeout(self) -> float | None:
        return self._timeouts["read"]

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._pool_size, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(connector=connector, headers={"User-Agent": self.USER_AGENT})

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    def _timeout(
        self, read: float | None, connect: float | None, pool: float | None, write: float | None
    ) -> aiohttp.ClientTimeout:
        key = (read, connect, pool, write)
        timeout = self._timeout_cache.get(key)
        if timeout is None:
            # aiohttp has no write timeout of its own: the body counts against the read phase's budget.
            timeout = self._timeout_cache[key] = aiohttp.ClientTimeout(
                total=None,
                connect=None if pool is None or connect is None else pool + connect,
                sock_connect=connect,
                sock_read=None if read is None else read + (write or 0.0),
            )
        return timeout

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: object = BaseRequest.DEFAULT_NONE,
        write_timeout: object = BaseRequest.DEFAULT_NONE,
        connect_timeout: object = BaseRequest.DEFAULT_NONE,
        pool_timeout: object = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if self._session is None or self._session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        files = request_data.multipart_data if request_data is not None and request_data.contains_files else None
        read = _given(read_timeout, self._timeouts["read"])
        connect = _given(connect_timeout, self._timeouts["connect"])
        pool = _given(pool_timeout, self._pool_timeout)
        write = _given(write_timeout, self._media_write_timeout if files else self._timeouts["write"])
        timeout = self._timeout(read, connect, pool, write)
        body: aiohttp.FormData | bytes | None = None
        headers: dict[str, str] | None = None
        if files:
            form = aiohttp.FormData()
            for name, value in request_data.json_parameters.items():  # type: ignore[union-attr]
                form.add_field(name, value)
            for name, part in files.items():
                filename, content = part[0], part[1]
                mime = part[2] if len(part) > 2 else "application/octet-stream"  # type: ignore[misc]
                form.add_field(name, content, filename=filename, content_type=mime)
            body = form
        elif request_data is not None:
            # A JSON body, which the Bot API takes for every method without a file, for a tenth of the CPU of
            # url-encoding a form. Values go in as JSON values, encoded once: PTB's json_parameters would encode
            # each nested value (a keyboard) to a string first, then that string again.
            body = orjson.dumps(request_data.parameters)
            headers = _JSON
        try:
            async with self._session.request(method, url, data=body, headers=headers, timeout=timeout) as response:
                return response.status, await response.read()
        except TimeoutError as err:
            raise TimedOut from err
        except aiohttp.ClientError as err:
            raise NetworkError(f"aiohttp.{err.__class__.__name__}: {err}") from err
