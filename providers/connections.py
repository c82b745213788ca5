"""Specialists' Google and Microsoft sign-ins: kept sealed, refreshed when due, attached to their calendar port."""

from __future__ import annotations

import asyncio
import logging
import time as _time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import delete, select

from providers.oauth import (
    OAuthProvider,
    SignInFailed,
    TokenRevoked,
    Tokens,
    TokenVault,
    exchange_code,
    refresh,
    start_sign_in,
)
from scheduling.calendar import CalendarUnavailable
from scheduling.config import Practice, Specialist
from scheduling.db import CalendarConnectionRow, SignInRow
from scheduling.store import Store

log = logging.getLogger(__name__)

SIGN_IN_VALID = timedelta(minutes=15)
ATTACH_RETRY = 15.0  # seconds between looks at the database for a sign-in another process completed


@dataclass(frozen=True)
class RemoteCalendar:
    """One calendar of the signed-in account, as its provider lists it."""

    id: str
    name: str
    writable: bool


@dataclass(frozen=True)
class Choice:
    """What a specialist chose: where bookings go, and which calendars block their time."""

    account: str
    booking: RemoteCalendar
    busy: tuple[RemoteCalendar, ...]


class ProviderAdapter(Protocol):
    """What one provider adds to the sign-in: its calendar list, and how a chosen calendar is served."""

    async def list_calendars(self, provider: OAuthProvider, token: str) -> tuple[str, list[RemoteCalendar]]: ...

    async def attach(self, spec: Specialist, choice: Choice, tokens: SpecialistTokens) -> None: ...

    def detach(self, specialist_id: str) -> None: ...


class SpecialistTokens:
    """A specialist's current access token, for the calendar client that sends their requests."""

    def __init__(self, hub: Connections, specialist_id: str) -> None:
        self.hub = hub
        self.specialist_id = specialist_id

    async def token(self, *, renew: bool = False) -> str:
        return await self.hub.access_token(self.specialist_id, renew=renew)


def _found(row: CalendarConnectionRow) -> list[RemoteCalendar]:
    return [RemoteCalendar(c["id"], c["name"], c["writable"]) for c in row.calendars.get("found", [])]


def choice_of(row: CalendarConnectionRow) -> Choice | None:
    """The chosen calendars of a connection, or None while the specialist is still choosing."""
    found = {c.id: c for c in _found(row)}
    booking = found.get(row.calendars.get("booking", ""))
    if booking is None:
        return None
    busy = tuple(found[i] for i in row.calendars.get("busy", []) if i in found and i != booking.id)
    return Choice(row.account, booking, busy)


class Connections:
    """The sign-ins of every specialist whose calendar is Google or Microsoft."""

    def __init__(
        self,
        practice: Practice,
        store: Store,
        providers: dict[str, OAuthProvider],
        vault: TokenVault | None,
        adapters: dict[str, ProviderAdapter],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_revoked: Callable[[str, str], Awaitable[None]] | None = None,
        callback_url: str | None = None,
    ) -> None:
        self.practice = practice
        self.store = store
        self.providers = providers
        self.vault = vault
        self.adapters = adapters
        self.clock = clock
        self.on_revoked = on_revoked
        self.callback_url = callback_url  # the bot's own /oauth/callback, when it has a public address
        self._tokens: dict[str, Tokens] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._attached: set[str] = set()
        self._looked: dict[str, float] = {}

    def managed(self, specialist_id: str) -> bool:
        spec = self.practice.specialist_by_id.get(specialist_id)
        return spec is not None and spec.calendar_kind in ("google", "microsoft")

    def provider_for(self, spec: Specialist) -> OAuthProvider | None:
        return self.providers.get(spec.calendar_kind)

    def _vault(self) -> TokenVault:
        if self.vault is None:
            raise SignInFailed("BOOKINGBOT_TOKEN_KEY is not set")
        return self.vault

    # --- signing in ----------------------------------------------------------------------------------

    async def begin(self, spec: Specialist, chat_id: int, redirect_uri: str) -> str:
        """A sign-in link for the specialist; the state and PKCE verifier wait in the database."""
        provider = self.provider_for(spec)
        if provider is None:
            raise SignInFailed(f"{spec.calendar_kind} sign-in is not set up")
        sign_in = start_sign_in(provider, redirect_uri)
        now = self.clock()
        async with self.store.tx() as tx:
            await tx.session.execute(delete(SignInRow).where(SignInRow.created_at < now - SIGN_IN_VALID))
            tx.session.add(
                SignInRow(
                    state=sign_in.state,
                    specialist_id=spec.id,
                    provider=provider.name,
                    verifier=self._vault().seal(sign_in.verifier),
                    redirect_uri=redirect_uri,
                    chat_id=chat_id,
                    created_at=now,
                )
            )
        return sign_in.url

    async def complete(self, state: str, code: str) -> CalendarConnectionRow:
        """Finish a sign-in (from the web callback or a pasted address): tokens stored, calendars listed."""
        async with self.store.tx() as tx:
            pending = await tx.session.get(SignInRow, state)
            if pending is not None:
                await tx.session.delete(pending)  # a link works once
        if pending is None or pending.created_at < self.clock() - SIGN_IN_VALID:
            raise SignInFailed("the sign-in link was used already or has expired")
        provider = self.providers.get(pending.provider)
        spec = self.practice.specialist_by_id.get(pending.specialist_id)
        if provider is None or spec is None or spec.calendar_kind != pending.provider:
            raise SignInFailed("the practice's calendar settings changed since the link was made")
        vault = self._vault()
        tokens = await exchange_code(provider, code, vault.open_text(pending.verifier), pending.redirect_uri)
        account, calendars = await self.adapters[provider.name].list_calendars(provider, tokens.access_token)
        if not any(c.writable for c in calendars):
            raise SignInFailed("the account has no calendar the bot may write to")
        async with self.store.tx() as tx:
            row = await tx.session.get(CalendarConnectionRow, spec.id)
            if row is None:
                row = CalendarConnectionRow(specialist_id=spec.id)
                tx.session.add(row)
            row.provider, row.account, row.tokens = provider.name, account, vault.seal(tokens)
            row.calendars = {"found": [c.__dict__ for c in calendars]}
            row.state, row.chat_id, row.revoked_told, row.updated_at = "choosing", pending.chat_id, False, self.clock()
        self._tokens[spec.id] = tokens
        return row

    async def connection(self, specialist_id: str) -> CalendarConnectionRow | None:
        async with self.store.tx() as tx:
            return await tx.session.get(CalendarConnectionRow, specialist_id)

    async def choose(
        self, specialist_id: str, *, booking: str | None = None, toggle: str | None = None
    ) -> CalendarConnectionRow:
        """Set the booking calendar (also busy), or switch one calendar's busy time on or off."""
        async with self.store.tx() as tx:
            row = await tx.session.get(CalendarConnectionRow, specialist_id, with_for_update=True)
            if row is None or row.state != "choosing":
                raise SignInFailed("there is no sign-in waiting for a choice")
            found = {c.id: c for c in _found(row)}
            chosen = dict(row.calendars)
            if booking is not None:
                if booking not in found or not found[booking].writable:
                    raise SignInFailed("that calendar cannot take bookings")
                chosen["booking"] = booking
                chosen["busy"] = [booking]
            if toggle is not None and toggle in found and toggle != chosen.get("booking"):
                busy = list(chosen.get("busy", []))
                chosen["busy"] = [b for b in busy if b != toggle] if toggle in busy else [*busy, toggle]
            row.calendars, row.updated_at = chosen, self.clock()
            return row

    async def finish(self, specialist_id: str) -> Choice:
        """Make the choice final and start using the calendars in this process (others follow within seconds)."""
        async with self.store.tx() as tx:
            row = await tx.session.get(CalendarConnectionRow, specialist_id, with_for_update=True)
            choice = choice_of(row) if row is not None else None
            if row is None or choice is None:
                raise SignInFailed("choose the calendar for bookings first")
            row.state, row.updated_at = "connected", self.clock()
        await self._attach(row)
        return choice

    # --- using ---------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Attach every connected specialist; one that fails stays unavailable and is retried on use."""
        for spec in self.practice.specialists:
            if self.managed(spec.id):
                await self.ensure(spec.id)

    async def ensure(self, specialist_id: str) -> None:
        """Attach a connected specialist not attached here yet (signed in through another process, or restarted)."""
        if specialist_id in self._attached or not self.managed(specialist_id):
            return
        now = _time.monotonic()
        if now - self._looked.get(specialist_id, -ATTACH_RETRY) < ATTACH_RETRY:
            return
        self._looked[specialist_id] = now
        row = await self.connection(specialist_id)
        if row is not None and row.state == "connected":
            try:
                await self._attach(row)
            except CalendarUnavailable as exc:
                log.warning("calendar of %s not attached yet: %s", specialist_id, exc)

    async def _attach(self, row: CalendarConnectionRow) -> None:
        spec = self.practice.specialist_by_id[row.specialist_id]
        choice = choice_of(row)
        if choice is None or spec.calendar_kind != row.provider:
            return
        await self.adapters[row.provider].attach(spec, choice, SpecialistTokens(self, spec.id))
        self._attached.add(spec.id)
        log.info("calendar of %s attached (%s)", spec.id, row.provider)

    def _lock(self, specialist_id: str) -> asyncio.Lock:
        return self._locks.setdefault(specialist_id, asyncio.Lock())

    async def access_token(self, specialist_id: str, *, renew: bool = False) -> str:
        """A current access token, refreshed when due or refused; TokenRevoked when sign-in is needed again."""
        async with self._lock(specialist_id):
            tokens = self._tokens.get(specialist_id)
            if tokens is None or renew or tokens.expiring():
                tokens = await self._refreshed(specialist_id, stale=tokens if renew else None)
            return tokens.access_token

    async def _refreshed(self, specialist_id: str, stale: Tokens | None) -> Tokens:
        row = await self.connection(specialist_id)
        if row is None or row.state == "revoked":
            raise TokenRevoked(f"{specialist_id}: not signed in")
        vault = self._vault()
        tokens = vault.open(row.tokens)
        # Another process may have refreshed already: use its token unless it is the one just refused.
        if not tokens.expiring() and (stale is None or tokens.access_token != stale.access_token):
            self._tokens[specialist_id] = tokens
            return tokens
        provider = self.providers.get(row.provider)
        if provider is None:
            raise CalendarUnavailable(f"{row.provider} sign-in is not set up (client id missing)")
        try:
            tokens = await refresh(provider, tokens)
        except TokenRevoked:
            await self.revoked(specialist_id)
            raise
        async with self.store.tx() as tx:
            fresh = await tx.session.get(CalendarConnectionRow, specialist_id)
            if fresh is not None:
                fresh.tokens, fresh.updated_at = vault.seal(tokens), self.clock()
        self._tokens[specialist_id] = tokens
        return tokens

    async def verify(self, specialist_id: str) -> None:
        """Ask the provider for a fresh token now, changing nothing (for `check`); TokenRevoked when refused."""
        row = await self.connection(specialist_id)
        provider = self.providers.get(row.provider) if row is not None else None
        if row is None or provider is None:
            raise TokenRevoked(f"{specialist_id}: not signed in")
        await refresh(provider, self._vault().open(row.tokens))

    async def revoked(self, specialist_id: str) -> None:
        """Mark the sign-in revoked, stop using it here, and have the specialist and admins told once."""
        self._tokens.pop(specialist_id, None)
        self._attached.discard(specialist_id)
        tell = False
        async with self.store.tx() as tx:
            row = await tx.session.get(CalendarConnectionRow, specialist_id, with_for_update=True)
            if row is not None:
                tell = not row.revoked_told
                row.state, row.revoked_told, row.updated_at = "revoked", True, self.clock()
        if row is not None and (adapter := self.adapters.get(row.provider)) is not None:
            adapter.detach(specialist_id)
        log.warning("calendar sign-in of %s was revoked; bookings wait until they sign in again", specialist_id)
        if tell and self.on_revoked is not None and row is not None:
            await self.on_revoked(specialist_id, row.provider)

    async def status(self) -> dict[str, dict[str, Any]]:
        """Per managed specialist: provider, state, account and chosen calendars (for `check` and /healthz)."""
        out: dict[str, dict[str, Any]] = {}
        async with self.store.tx() as tx:
            rows = {r.specialist_id: r for r in (await tx.session.scalars(select(CalendarConnectionRow))).all()}
        for spec in self.practice.specialists:
            if not self.managed(spec.id):
                continue
            row = rows.get(spec.id)
            if row is None or row.provider != spec.calendar_kind:
                out[spec.id] = {"provider": spec.calendar_kind, "state": "not signed in"}
                continue
            choice = choice_of(row)
            out[spec.id] = {
                "provider": row.provider,
                "state": row.state,
                "account": row.account,
                "booking": choice.booking.name if choice else "",
                "busy": [c.name for c in choice.busy] if choice else [],
                "since": row.updated_at.isoformat(timespec="seconds"),
            }
        return out
