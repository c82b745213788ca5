"""Assemble the running system: database, calendars (embedded or external), outbox and booking service."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass, field
from functools import cached_property
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.calendar_text import event_for, group_event_for, series_event_for
from bot.deps import Deps
from bot.mail import Mailer
from bot.settings import ENV, Settings, SettingsError
from caldav_bridge.embedded import EmbeddedAccount, EmbeddedCalDAV, PortInUse
from caldav_bridge.gateway import CalDAVGateway
from caldav_bridge.outbox import OutboxWorker
from partner_api.webhooks import WebhookWorker, webhook_secrets
from providers.connections import Connections, ProviderAdapter
from providers.feeds import BusyFeeds
from providers.google import GoogleCalendars
from providers.graph import GraphGateway
from providers.oauth import TokenVault, providers_from_env
from providers.router import CalendarRouter
from scheduling.booking import BookingService, Clock, utcnow
from scheduling.calendar import CalendarPort, EventSpec
from scheduling.config import Practice
from scheduling.db import GroupRow, create_schema, make_engine, private_dir
from scheduling.locks import KeyLocks, key_locks
from scheduling.partners import PartnerService
from scheduling.store import AppointmentRow, Store
from scheduling.store_series import SeriesRow

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """Everything the bot runs on; `close()` stops it in reverse order."""

    settings: Settings
    practice: Practice
    engine: AsyncEngine
    store: Store
    gateway: CalDAVGateway
    calendars: CalendarRouter
    connections: Connections
    worker: OutboxWorker
    booking: BookingService
    webhooks: WebhookWorker
    embedded: EmbeddedCalDAV | None = None
    accounts: dict[str, EmbeddedAccount] = field(default_factory=dict)
    chats: KeyLocks = field(default_factory=KeyLocks)
    graph: GraphGateway | None = None
    mailer: Mailer | None = None
    _worker_task: asyncio.Task[None] | None = None
    _feeds_task: asyncio.Task[None] | None = None
    _webhooks_task: asyncio.Task[None] | None = None

    @property
    def feeds(self) -> BusyFeeds:
        return self.calendars.feeds

    @property
    def deps(self) -> Deps:
        return Deps(self.practice, self.store, self.booking, self.chats, self.connections, self.mailer)

    @cached_property
    def partners(self) -> PartnerService:
        """Partner bookings, for the partner API mounted in the web application."""
        return PartnerService(self.practice, self.booking)

    def start_outbox(self, poll: float = 2.0) -> None:
        """Drain the outbox and the partner webhooks, and keep busy feeds fresh, in the background until close()."""
        self._worker_task = asyncio.create_task(self.worker.run_forever(poll), name="outbox")
        if self.feeds.feeds:
            self._feeds_task = asyncio.create_task(self.feeds.run_forever(), name="busy-feeds")
        if any(p.webhook_url for p in self.practice.partners):
            self._webhooks_task = asyncio.create_task(self.webhooks.run_forever(poll), name="partner-webhooks")

    async def close(self) -> None:
        self.worker.stop()
        self.webhooks.stop()
        for task in (self._worker_task, self._webhooks_task):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait_for(task, timeout=15)
        await self.webhooks.close()
        if self._feeds_task is not None:
            self._feeds_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._feeds_task
        await self.feeds.close()
        if self.graph is not None:
            await self.graph.close()
        await self.gateway.close()
        if self.embedded is not None:
            await self.embedded.stop()
        await self.chats.close()
        if self.mailer is not None:
            await self.mailer.close()
        await self.engine.dispose()


async def start_runtime(
    settings: Settings,
    practice: Practice,
    *,
    clock: Clock = utcnow,
    accounts: dict[str, EmbeddedAccount] | None = None,
) -> Runtime:
    """Open the database (creating the schema), start the embedded calendar if needed, connect every calendar.

    `accounts` hands over embedded calendars another process already serves (replicas on one machine).
    """
    private_dir(settings.data_dir)
    engine = make_engine(settings.db_url)
    await create_schema(engine)
    store = Store(engine)
    embedded: EmbeddedCalDAV | None = None
    accounts = dict(accounts or {})
    if not accounts and any(s.calendar_kind == "embedded" for s in practice.specialists):
        embedded = EmbeddedCalDAV(settings.data_dir, host=settings.caldav_host, port=settings.caldav_port)
        try:
            accounts = await embedded.start(practice)
        except PortInUse as exc:
            await engine.dispose()
            raise SettingsError(
                f"the embedded calendar server cannot listen on {exc.host}:{exc.port}: another program uses "
                f"port {exc.port}. Stop that program, or set {ENV['caldav_port']} to a free port "
                f"(and {ENV['caldav_host']} for another address)."
            ) from None
        except BaseException:
            await engine.dispose()
            raise
    gateway = CalDAVGateway(practice, accounts=accounts, clock=clock)
    try:
        await gateway.start()
    except Exception:
        if embedded is not None:
            await embedded.stop()
        await engine.dispose()
        raise

    def event(appt: AppointmentRow) -> EventSpec:
        return event_for(practice, appt, appt.client)

    def series_event(series: SeriesRow, rows: list[AppointmentRow]) -> EventSpec | None:
        return series_event_for(practice, series, rows)

    def group_event(group: GroupRow, seats: list[AppointmentRow]) -> EventSpec | None:
        return group_event_for(practice, group, seats)

    connections, graph, ports = _signed_in_calendars(settings, practice, store, gateway, clock)
    calendars = CalendarRouter(gateway, BusyFeeds(practice, clock=clock), ports, before=connections.ensure)
    await connections.start()
    worker = OutboxWorker(store, calendars, event, clock, series_event_for=series_event, group_event_for=group_event)
    webhooks = WebhookWorker(practice, store, webhook_secrets(practice, os.environ), clock)

    def changed() -> None:
        # Every change that writes to a calendar may also be one a partner is told of.
        worker.wake()
        webhooks.wake()

    async def reconnected(specialist_id: str) -> None:
        # Writes that failed while the server was away go now, not at their next backoff step.
        async with store.tx() as tx:
            await tx.outbox_retry_now(specialist_id, clock())
        worker.wake()

    gateway.on_connected = reconnected
    booking = BookingService(practice, store, calendars, clock=clock, on_calendar_change=changed)
    chats = key_locks(engine)
    return Runtime(
        settings,
        practice,
        engine,
        store,
        gateway,
        calendars,
        connections,
        worker,
        booking,
        webhooks,
        embedded,
        accounts,
        graph=graph,
        chats=chats,
        mailer=Mailer(settings, store, clock) if settings.smtp_host else None,
    )


def _signed_in_calendars(
    settings: Settings, practice: Practice, store: Store, gateway: CalDAVGateway, clock: Clock
) -> tuple[Connections, GraphGateway | None, dict[str, CalendarPort]]:
    """Google specialists go through the CalDAV gateway with their tokens; Microsoft ones through Graph."""
    providers = providers_from_env()
    adapters: dict[str, ProviderAdapter] = {}
    graph: GraphGateway | None = None
    if "google" in providers:
        adapters["google"] = GoogleCalendars(providers["google"], gateway)
    if "microsoft" in providers:
        graph = adapters["microsoft"] = GraphGateway(practice, store, providers["microsoft"], clock=clock)
    ports: dict[str, CalendarPort] = {
        s.id: graph for s in practice.specialists if graph is not None and s.calendar_kind == "microsoft"
    }
    connections = Connections(
        practice, store, providers, TokenVault.from_env(), adapters, clock=clock, callback_url=oauth_callback(settings)
    )
    return connections, graph, ports


def oauth_callback(settings: Settings) -> str | None:
    """Where a provider sends the browser after sign-in: the bot's public web address, when it has one."""
    if settings.public_url:
        return settings.public_url.rstrip("/") + "/oauth/callback"
    if settings.webhook_url:
        parts = urlsplit(settings.webhook_url)
        return f"{parts.scheme}://{parts.netloc}/oauth/callback"
    return None
