"""bot/http1.py: the keep-alive HTTP/1.1 client of the Bot API calls, against a real aiohttp server."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from telegram.error import NetworkError, TimedOut
from telegram.request import RequestData
from telegram.request._requestparameter import RequestParameter

from bot.http1 import Http1Pool, HttpError, _parse
from bot.telegram_http import AiohttpRequest


def test_parse_lengths_chunks_and_interim_answers() -> None:
    assert _parse(bytearray(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), False) == (200, b"ok", True)
    assert _parse(bytearray(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nok"), False) is None
    assert _parse(bytearray(b"HTTP/1.1 200 OK\r\nContent-Len"), False) is None
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n3;x=y\r\n!!!\r\n0\r\n\r\n"
    assert _parse(bytearray(chunked), False) == (200, b"ok!!!", True)
    assert _parse(bytearray(chunked[:-4]), False) is None
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 429 Too Many\r\ncontent-length: 1\r\nConnection: close\r\n\r\nx"
    assert _parse(bytearray(interim), False) == (429, b"x", False)
    assert _parse(bytearray(b"HTTP/1.0 200 OK\r\n\r\nto the end"), True) == (200, b"to the end", False)
    assert _parse(bytearray(b"HTTP/1.0 200 OK\r\n\r\nto the"), False) is None
    with pytest.raises(HttpError):
        _parse(bytearray(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nok"), True)
    with pytest.raises(HttpError):
        _parse(bytearray(b"SSH-2.0-OpenSSH\r\n\r\n"), False)


class Server:
    """A loopback aiohttp server that counts the connections it was asked on."""

    def __init__(self) -> None:
        self.peers: set[object] = set()
        self.delay = 0.0
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.peers.add(request.transport)
        body = await request.json()
        await asyncio.sleep(self.delay)
        if request.path.endswith("/chunked"):
            response = web.StreamResponse()
            response.enable_chunked_encoding()
            await response.prepare(request)
            await response.write(b'{"ok": ')
            await response.write(b"true}")
            await response.write_eof()
            return response
        if request.path.endswith("/close"):
            return web.json_response({"echo": body}, headers={"Connection": "close"})
        return web.json_response({"echo": body, "type": request.content_type})


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = Server()
    app = web.Application()
    app.router.add_post("/{tail:.*}", srv.handle)
    srv.runner = web.AppRunner(app, keepalive_timeout=0.3)
    await srv.runner.setup()
    site = web.TCPSite(srv.runner, "127.0.0.1", 0)
    await site.start()
    srv.url = f"http://127.0.0.1:{srv.runner.addresses[0][1]}"
    yield srv
    await srv.runner.cleanup()


async def test_calls_share_a_kept_alive_connection(server: Server) -> None:
    pool = Http1Pool(4, "test")
    timeouts = {"connect_timeout": 5.0, "read_timeout": 5.0, "pool_timeout": 1.0}
    for n in range(5):
        status, body = await pool.post_json(f"{server.url}/bot1/x", b'{"n": %d}' % n, **timeouts)
        assert status == 200 and body == b'{"echo": {"n": %d}, "type": "application/json"}' % n
    assert len(server.peers) == 1
    assert await pool.post_json(f"{server.url}/chunked", b"{}", **timeouts) == (200, b'{"ok": true}')
    # The server ends idle connections (here after 0.3 s): the next call opens a new one.
    await asyncio.sleep(0.6)
    assert (await pool.post_json(f"{server.url}/x", b"{}", **timeouts))[0] == 200
    assert len(server.peers) == 2
    # An answer with Connection: close is not followed by another request on its connection.
    assert (await pool.post_json(f"{server.url}/close", b"{}", **timeouts))[0] == 200
    assert (await pool.post_json(f"{server.url}/x", b"{}", **timeouts))[0] == 200
    assert len(server.peers) == 3
    await pool.close()


async def test_concurrent_calls_stay_within_the_limit(server: Server) -> None:
    pool = Http1Pool(2, "test")
    server.delay = 0.05
    timeouts = {"connect_timeout": 5.0, "read_timeout": 5.0, "pool_timeout": 5.0}
    answers = await asyncio.gather(*(pool.post_json(f"{server.url}/x", b"{}", **timeouts) for _ in range(6)))
    assert [status for status, _ in answers] == [200] * 6 and len(server.peers) == 2
    with pytest.raises(TimeoutError):
        await asyncio.gather(
            *(pool.post_json(f"{server.url}/x", b"{}", **(timeouts | {"pool_timeout": 0.01})) for _ in range(3))
        )
    await pool.close()


async def test_ptb_errors_for_a_slow_or_missing_server(server: Server) -> None:
    request = AiohttpRequest(connection_pool_size=2, read_timeout=0.05, write_timeout=0.0)
    await request.initialize()
    data = RequestData([RequestParameter.from_input("chat_id", 7)])
    try:
        assert await request.do_request(f"{server.url}/x", "POST", data) == (
            200,
            b'{"echo": {"chat_id": 7}, "type": "application/json"}',
        )
        server.delay = 0.3
        with pytest.raises(TimedOut):
            await request.do_request(f"{server.url}/x", "POST", data)
        server.delay = 0.0
        # The timed-out connection is not reused: its late answer would be taken for the next call's.
        assert (await request.do_request(f"{server.url}/x", "POST", data))[0] == 200
        with pytest.raises(NetworkError):
            await request.do_request("http://127.0.0.1:9/x", "POST", data)
    finally:
        await request.shutdown()


async def test_a_timeout_after_many_calls_on_one_connection(server: Server) -> None:
    pool = Http1Pool(1, "test")
    timeouts = {"connect_timeout": 5.0, "read_timeout": 0.2, "pool_timeout": 1.0}
    for _ in range(20):  # each moves the connection's one deadline on
        assert (await pool.post_json(f"{server.url}/x", b"{}", **timeouts))[0] == 200
    await asyncio.sleep(0.25)  # the first call's timer fires with no request under way
    server.delay = 0.5
    began = asyncio.get_running_loop().time()
    with pytest.raises(TimeoutError):
        await pool.post_json(f"{server.url}/x", b"{}", **timeouts)
    assert 0.15 < asyncio.get_running_loop().time() - began < 0.45
    await pool.close()


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for localhost and its key, as files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


async def test_https_with_kept_alive_connections(tmp_path: Path) -> None:
    cert_file, key_file = _self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert_file, key_file)
    srv = Server()
    app = web.Application()
    app.router.add_post("/{tail:.*}", srv.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_tls)
    await site.start()
    port = runner.addresses[0][1]
    timeouts = {"connect_timeout": 5.0, "read_timeout": 5.0, "pool_timeout": 1.0}
    try:
        trusting = Http1Pool(2, "test", tls=ssl.create_default_context(cafile=str(cert_file)))
        for n in range(3):
            status, body = await trusting.post_json(f"https://localhost:{port}/x", b'{"n": %d}' % n, **timeouts)
            assert status == 200 and b'"n": %d' % n in body
        assert len(srv.peers) == 1
        await trusting.close()
        # The system's CAs do not know this certificate: no request goes out.
        with pytest.raises(ssl.SSLError):
            await Http1Pool(2, "test").post_json(f"https://localhost:{port}/x", b"{}", **timeouts)
    finally:
        await runner.cleanup()


def test_host_header_is_the_url_authority() -> None:
    pool = Http1Pool(1, "test")
    origin, head = pool._target("http://[::1]:8081/bot1/getMe")
    assert origin == ("::1", 8081, False) and head.startswith(b"POST /bot1/getMe HTTP/1.1\r\nHost: [::1]:8081\r\n")
    origin, head = pool._target("https://api.telegram.org/bot1/getMe")
    assert origin == ("api.telegram.org", 443, True) and b"\r\nHost: api.telegram.org\r\n" in head
