"""OAuth 2.0 for calendar providers: sign-in links with PKCE, code exchange, refresh, tokens sealed at rest."""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import aiohttp
from cryptography.fernet import Fernet, InvalidToken

from scheduling.calendar import CalendarUnavailable

ProviderName = Literal["google", "microsoft"]
PROVIDERS: tuple[ProviderName, ...] = ("google", "microsoft")

# Without a public web address the browser is sent here; nothing listens, and the specialist pastes
# the address it ends on into the chat (as rclone and the gcloud CLI do).
PASTE_REDIRECT = "http://127.0.0.1:53682/"
TOKEN_KEY_ENV = "BOOKINGBOT_TOKEN_KEY"
TIMEOUT = aiohttp.ClientTimeout(total=20)
RENEW_BEFORE = 120.0  # seconds: refresh an access token this long before it expires

# Google's CalDAV endpoint takes the calendar scope; a narrower events-only scope is a REST API
# scope. The scopes are a setting for practices that want to try otherwise (docs/calendars.md).
GOOGLE_SCOPES = "https://www.googleapis.com/auth/calendar"
MICROSOFT_SCOPES = "offline_access User.Read Calendars.ReadWrite"


class SignInFailed(Exception):
    """The sign-in could not be completed; the message says why, without secrets."""


class TokenRevoked(CalendarUnavailable):
    """The provider no longer accepts the refresh token: the specialist must sign in again."""


@dataclass(frozen=True)
class OAuthProvider:
    """One provider's OAuth client and endpoints; every URL is a setting, so stand-ins can take their place."""

    name: ProviderName
    client_id: str
    client_secret: str = field(repr=False)
    authorize_url: str
    token_url: str
    api_url: str  # Google: the Calendar API (calendar list); Microsoft: Microsoft Graph
    caldav_url: str = ""  # Google's CalDAV endpoint
    scopes: str = ""
    extra: tuple[tuple[str, str], ...] = ()


def _env(env: Mapping[str, str], name: str, default: str = "") -> str:
    return env.get(f"BOOKINGBOT_{name}", "").strip() or default


def providers_from_env(env: Mapping[str, str] | None = None) -> dict[str, OAuthProvider]:
    """The providers whose client id is set, with endpoints from the environment or the providers' own."""
    env = os.environ if env is None else env
    found: dict[str, OAuthProvider] = {}
    if client_id := _env(env, "GOOGLE_CLIENT_ID"):
        found["google"] = OAuthProvider(
            "google",
            client_id,
            _env(env, "GOOGLE_CLIENT_SECRET"),
            _env(env, "GOOGLE_AUTH_URL", "https://accounts.google.com/o/oauth2/v2/auth"),
            _env(env, "GOOGLE_TOKEN_URL", "https://oauth2.googleapis.com/token"),
            _env(env, "GOOGLE_API_URL", "https://www.googleapis.com/calendar/v3/"),
            _env(env, "GOOGLE_CALDAV_URL", "https://apidata.googleusercontent.com/caldav/v2/"),
            _env(env, "GOOGLE_SCOPES", GOOGLE_SCOPES),
            # A refresh token is only issued with offline access, and again only with consent asked.
            (("access_type", "offline"), ("prompt", "consent")),
        )
    if client_id := _env(env, "MICROSOFT_CLIENT_ID"):
        login = _env(env, "MICROSOFT_LOGIN_URL", "https://login.microsoftonline.com/").rstrip("/")
        tenant = _env(env, "MICROSOFT_TENANT", "common")
        found["microsoft"] = OAuthProvider(
            "microsoft",
            client_id,
            _env(env, "MICROSOFT_CLIENT_SECRET"),
            f"{login}/{tenant}/oauth2/v2.0/authorize",
            f"{login}/{tenant}/oauth2/v2.0/token",
            _env(env, "MICROSOFT_GRAPH_URL", "https://graph.microsoft.com/v1.0/"),
            scopes=_env(env, "MICROSOFT_SCOPES", MICROSOFT_SCOPES),
        )
    return found


@dataclass
class Tokens:
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: float  # epoch seconds

    def expiring(self) -> bool:
        return time.time() >= self.expires_at - RENEW_BEFORE


class TokenVault:
    """Seals tokens for the database with a key from the environment (Fernet: AES with an HMAC)."""

    def __init__(self, key: str) -> None:
        self._fernet = Fernet(key.encode("ascii"))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TokenVault | None:
        """The vault, or None when BOOKINGBOT_TOKEN_KEY is unset; ValueError when it is not a Fernet key."""
        key = (os.environ if env is None else env).get(TOKEN_KEY_ENV, "").strip()
        if not key:
            return None
        try:
            return cls(key)
        except (ValueError, UnicodeEncodeError):
            raise ValueError(f"{TOKEN_KEY_ENV} is not a valid key; make one with `bookingbot token-key`") from None

    @staticmethod
    def new_key() -> str:
        return Fernet.generate_key().decode("ascii")

    def seal(self, data: Tokens | str) -> str:
        text = json.dumps(asdict(data)) if isinstance(data, Tokens) else data
        return self._fernet.encrypt(text.encode("utf-8")).decode("ascii")

    def open_text(self, blob: str) -> str:
        try:
            return self._fernet.decrypt(blob.encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise TokenRevoked("stored tokens cannot be read with the current BOOKINGBOT_TOKEN_KEY") from None

    def open(self, blob: str) -> Tokens:
        return Tokens(**json.loads(self.open_text(blob)))


@dataclass(frozen=True)
class SignIn:
    """A started sign-in: the link for the browser, and what completing it needs."""

    url: str
    state: str
    verifier: str


def start_sign_in(provider: OAuthProvider, redirect_uri: str) -> SignIn:
    """The authorization-code link with PKCE (S256) and a fresh state."""
    # authlib is imported where it is used: a practice without Google or Microsoft calendars never loads it.
    from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
    from authlib.oauth2.rfc7636 import create_s256_code_challenge

    state, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(64)
    url = prepare_grant_uri(
        provider.authorize_url,
        provider.client_id,
        "code",
        redirect_uri=redirect_uri,
        scope=provider.scopes,
        state=state,
        code_challenge=create_s256_code_challenge(verifier),
        code_challenge_method="S256",
        **dict(provider.extra),
    )
    return SignIn(url, state, verifier)


def code_from_address(address: str) -> tuple[str, str]:
    """(code, state) from the address the browser ended on; SignInFailed when it holds an error or no code."""
    from authlib.oauth2.rfc6749.parameters import parse_authorization_code_response

    try:
        params = parse_authorization_code_response(address.strip())
    except Exception as exc:
        error = "access_denied" if "error=access_denied" in address else type(exc).__name__
        raise SignInFailed(error) from None
    return str(params["code"]), str(params.get("state", ""))


async def _token_request(provider: OAuthProvider, **params: str) -> Tokens:
    from authlib.oauth2.rfc6749.parameters import prepare_token_request

    grant = params.pop("grant_type")
    secret = {"client_secret": provider.client_secret} if provider.client_secret else {}
    body = prepare_token_request(grant, client_id=provider.client_id, **secret, **params)
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
    try:
        async with (
            aiohttp.ClientSession(timeout=TIMEOUT) as http,
            http.post(provider.token_url, data=body, headers=headers) as r,
        ):
            answer: dict[str, Any] = await r.json(content_type=None)
            status = r.status
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise CalendarUnavailable(f"{provider.name} sign-in server: {type(exc).__name__}") from None
    if status == 400 and answer.get("error") == "invalid_grant":
        raise TokenRevoked(f"{provider.name}: the sign-in is no longer valid (invalid_grant)")
    if status != 200 or "access_token" not in answer:
        raise CalendarUnavailable(f"{provider.name} sign-in server answered {status} {answer.get('error', '')}".strip())
    return Tokens(
        answer["access_token"],
        answer.get("refresh_token") or params.get("refresh_token", ""),
        time.time() + float(answer.get("expires_in", 3600)),
    )


async def exchange_code(provider: OAuthProvider, code: str, verifier: str, redirect_uri: str) -> Tokens:
    """Trade the authorization code for tokens; a code without a refresh token is refused."""
    try:
        tokens = await _token_request(
            provider, grant_type="authorization_code", code=code, code_verifier=verifier, redirect_uri=redirect_uri
        )
    except TokenRevoked:
        raise SignInFailed("the sign-in link was used already or has expired") from None
    if not tokens.refresh_token:
        raise SignInFailed("the provider gave no refresh token (offline access was not granted)")
    return tokens


async def refresh(provider: OAuthProvider, tokens: Tokens) -> Tokens:
    """New tokens from the refresh token; TokenRevoked when the provider refuses it for good."""
    return await _token_request(provider, grant_type="refresh_token", refresh_token=tokens.refresh_token)
