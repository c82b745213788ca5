"""The partner API's routes: parse the request, call the partner service, render JSON. No rule lives here."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import date
from typing import Any

from aiohttp import web
from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from partner_api.auth import Caller, KeyRing
from partner_api.openapi import document
from scheduling.booking import AlreadyDecided, CancellationClosed
from scheduling.calendar import CalendarUnavailable
from scheduling.config import Practice
from scheduling.conflicts import Problem
from scheduling.contact import clean_email, clean_name, normalize_phone
from scheduling.model import Channel, Slot
from scheduling.partner_store import booking_view, change_view, iso
from scheduling.partners import (
    MAX_QUERY_DAYS,
    KeyReused,
    NotFound,
    PartnerClient,
    PartnerRequest,
    PartnerService,
    SlotGone,
    Unbookable,
)

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
MAX_BODY = 64 * 1024
MAX_KEY_CHARS = 255
FEED_LIMIT = 100

SERVICE_KEY: web.AppKey[PartnerService] = web.AppKey("partner_service", PartnerService)
KEYS_KEY: web.AppKey[KeyRing] = web.AppKey("partner_keys", KeyRing)
CALLER_KEY: web.RequestKey[Caller] = web.RequestKey("partner_caller", Caller)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ClientIn(_Body):
    name: str = Field(min_length=1, max_length=200)
    phone: str = Field(max_length=40)
    email: str | None = Field(None, max_length=254)
    reference: str = Field(min_length=1, max_length=200)


class BookingIn(_Body):
    service: str = Field(max_length=64)
    start: AwareDatetime
    channel: Channel
    client: ClientIn
    note: str = Field("", max_length=2000)
    location: str | None = Field(None, max_length=64)
    specialist: str | None = Field(None, max_length=64)


def _error(status: int, error: str, **details: Any) -> web.Response:
    return web.json_response({"error": error, **details}, status=status)


def _invalid(problems: list[dict[str, str]]) -> web.Response:
    return _error(422, "invalid_request", problems=problems)


def _field(field: str, message: str) -> dict[str, str]:
    return {"kind": "invalid_field", "field": field, "message": message}


def problem_view(problem: Problem) -> dict[str, Any]:
    """A broken rule as check_appointment types it; a collision shows its time only, never an event's text."""
    out: dict[str, Any] = {"kind": str(problem.kind)}
    if problem.busy is not None:
        out["busy_start"], out["busy_end"] = iso(problem.busy.start), iso(problem.busy.end)
    return out


def _caller(request: web.Request) -> Caller:
    return request[CALLER_KEY]


def slot_views(practice: Practice, slots: list[Slot]) -> list[dict[str, Any]]:
    """Free starts, one entry per start and location, naming the specialists free then."""
    grouped: dict[tuple[Any, str], dict[str, Any]] = {}
    for slot in slots:
        key = (slot.start, slot.location_id)
        entry = grouped.get(key)
        if entry is None:
            loc = practice.location_by_id[slot.location_id]
            entry = grouped[key] = {
                "start": iso(slot.start),
                "end": iso(slot.end),
                "location": {
                    "id": loc.id,
                    "name": loc.name,
                    "address": loc.address,
                    "kind": loc.kind,
                    "time_zone": practice.zone(loc.id).key,
                },
                "channels": [],
                "specialists": [],
            }
        for channel in slot.channels:
            if str(channel) not in entry["channels"]:
                entry["channels"].append(str(channel))
        spec = practice.specialist_by_id[slot.specialist_id]
        entry["specialists"].append({"id": spec.id, "name": spec.name})
    return list(grouped.values())


# --- middleware ----------------------------------------------------------------------------------------


def _make_middleware(keys: KeyRing) -> Any:
    storage = MemoryStorage()
    limiter = MovingWindowRateLimiter(storage)

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        """Key check, rate limit, body limit and a log line without client data, for every call."""
        started = time.monotonic()
        route = request.match_info.route.resource
        where = route.canonical if route is not None else "?"
        status = 500
        partner_id = "-"
        try:
            if where == f"{PREFIX}/openapi.json":
                response = await handler(request)
            else:
                caller = keys.caller(request.headers.get("Authorization"))
                if caller is None:
                    # No detail: a prober learns nothing about which part was wrong.
                    status = 401
                    return web.Response(status=401, headers={"WWW-Authenticate": "Bearer"})
                partner_id = caller.partner.id
                item = RateLimitItemPerMinute(caller.partner.rate_limit_per_minute)
                if not limiter.hit(item, caller.partner.id, caller.key_name):
                    reset = limiter.get_window_stats(item, caller.partner.id, caller.key_name).reset_time
                    status = 429
                    retry_after = max(1, math.ceil(reset - time.time()))
                    response = _error(429, "rate_limited", retry_after=retry_after)
                    response.headers["Retry-After"] = str(retry_after)
                    return response
                if request.content_length is not None and request.content_length > MAX_BODY:
                    status = 413
                    return _error(413, "body_too_large", limit=MAX_BODY)
                request = request.clone(client_max_size=MAX_BODY)
                request[CALLER_KEY] = caller
                response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            log.info(
                "partner %s %s %s %s %.0fms",
                partner_id,
                request.method,
                where,
                status,
                (time.monotonic() - started) * 1000,
            )

    return guard


async def _json_body(request: web.Request) -> Any:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise web.HTTPRequestEntityTooLarge(
            max_size=MAX_BODY,
            actual_size=MAX_BODY + 1,
            text=json.dumps({"error": "body_too_large", "limit": MAX_BODY}),
            content_type="application/json",
        ) from None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None


# --- routes ----------------------------------------------------------------------------------------


async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 document of these routes."""
    return web.json_response(document())


async def services(request: web.Request) -> web.Response:
    """The services this partner may book."""
    practice = request.app[SERVICE_KEY].practice
    partner = _caller(request).partner
    out = []
    for service_id in partner.services:
        svc = practice.service_by_id[service_id]
        out.append(
            {
                "id": svc.id,
                "name": svc.name,
                "category": svc.category,
                "duration_minutes": svc.duration,
                "channels": [str(c) for c in svc.channels],
                "instructions": svc.instructions,
            }
        )
    return web.json_response({"services": out})


def _date(value: str | None, name: str, problems: list[dict[str, str]]) -> date | None:
    if not value:
        problems.append(_field(name, "required (YYYY-MM-DD)"))
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        problems.append(_field(name, "not a date (YYYY-MM-DD)"))
        return None


async def slots(request: web.Request) -> web.Response:
    """Free starts in the windows open to this partner."""
    service: PartnerService = request.app[SERVICE_KEY]
    partner = _caller(request).partner
    query = request.query
    problems: list[dict[str, str]] = []
    service_id = query.get("service", "")
    if service_id not in partner.services:
        problems.append(_field("service", "not a service this partner may book"))
    first, last = _date(query.get("from"), "from", problems), _date(query.get("to"), "to", problems)
    if first and last and not 0 <= (last - first).days < MAX_QUERY_DAYS:
        problems.append(_field("to", f"must be on or after from, at most {MAX_QUERY_DAYS} days in all"))
    specialist = query.get("specialist") or None
    if specialist is not None and specialist not in service.practice.specialist_by_id:
        problems.append(_field("specialist", "no such specialist"))
    if problems or first is None or last is None:
        return _invalid(problems)
    found = await service.slots(partner, service_id, first, last, specialist)
    return web.json_response({"service": service_id, "slots": slot_views(service.practice, found)})


def _booking_request(service: PartnerService, body: Any) -> PartnerRequest | list[dict[str, str]]:
    try:
        data = BookingIn.model_validate(body)
    except ValidationError as exc:
        return [_field(".".join(str(p) for p in e["loc"]) or "body", e["msg"]) for e in exc.errors()]
    practice = service.practice
    problems: list[dict[str, str]] = []
    name = clean_name(data.client.name)
    phone = normalize_phone(data.client.phone, practice.practice.country)
    email = clean_email(data.client.email) if data.client.email else None
    if name is None:
        problems.append(_field("client.name", "not a person's name"))
    if phone is None:
        problems.append(_field("client.phone", "not a valid phone number (use +<country code>...)"))
    if data.client.email and email is None:
        problems.append(_field("client.email", "not an e-mail address"))
    if data.location is not None and data.location not in practice.location_by_id:
        problems.append(_field("location", "no such location"))
    if data.specialist is not None and data.specialist not in practice.specialist_by_id:
        problems.append(_field("specialist", "no such specialist"))
    if problems or name is None or phone is None:
        return problems
    return PartnerRequest(
        service_id=data.service,
        start=data.start,
        channel=data.channel,
        client=PartnerClient(data.client.reference, name, phone, email),
        note=data.note,
        location_id=data.location,
        specialist_id=data.specialist,
    )


async def create_booking(request: web.Request) -> web.Response:
    """Book a confirmed visit; an Idempotency-Key makes a retry return the first result."""
    service: PartnerService = request.app[SERVICE_KEY]
    partner = _caller(request).partner
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (0 < len(key) <= MAX_KEY_CHARS and key.isprintable()):
        return _invalid([_field("Idempotency-Key", f"1 to {MAX_KEY_CHARS} printable characters")])
    body = await _json_body(request)
    parsed = _booking_request(service, body)
    if isinstance(parsed, list):
        return _invalid(parsed)
    try:
        result = await service.book(partner, parsed, key)
    except Unbookable as exc:
        return _error(422, "rules_broken", problems=[problem_view(p) for p in exc.problems])
    except SlotGone as exc:
        return _error(409, "slot_taken", alternatives=slot_views(service.practice, exc.alternatives))
    except KeyReused:
        return _error(422, "idempotency_key_reused")
    except CalendarUnavailable:
        return _error(503, "calendar_unavailable")
    headers = {"Location": f"{PREFIX}/bookings/{result.booking.public_id}"}
    if result.replayed:
        headers["Idempotent-Replayed"] = "true"
    return web.json_response(booking_view(result.appointment, result.booking), status=201, headers=headers)


async def get_booking(request: web.Request) -> web.Response:
    """One of this partner's bookings."""
    service: PartnerService = request.app[SERVICE_KEY]
    try:
        appt, booking = await service.get(_caller(request).partner, request.match_info["booking_id"])
    except NotFound:
        return _error(404, "not_found")
    return web.json_response(booking_view(appt, booking))


async def list_changes(request: web.Request) -> web.Response:
    """This partner's booking changes after a cursor (`since`), oldest first, for polling partners."""
    service: PartnerService = request.app[SERVICE_KEY]
    since = request.query.get("since", "0")
    if not since.isdigit() or len(since) > 18:
        return _invalid([_field("since", "a cursor from an earlier answer (0 for the beginning)")])
    rows = await service.changes(_caller(request).partner, int(since), FEED_LIMIT)
    changes = [change_view(row) for row in rows]
    return web.json_response({"changes": changes, "next": rows[-1].id if rows else int(since)})


async def cancel_booking(request: web.Request) -> web.Response:
    """The client cancels through the partner, until the partner's cancellation deadline."""
    service: PartnerService = request.app[SERVICE_KEY]
    try:
        appt, booking = await service.cancel(_caller(request).partner, request.match_info["booking_id"])
    except NotFound:
        return _error(404, "not_found")
    except CancellationClosed:
        return _error(409, "cancellation_closed")
    except AlreadyDecided as exc:
        return _error(409, "not_cancellable", status=str(exc.status))
    return web.json_response(booking_view(appt, booking))


ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/openapi.json", openapi),
    ("GET", "/services", services),
    ("GET", "/slots", slots),
    ("POST", "/bookings", create_booking),
    ("GET", "/bookings", list_changes),
    ("GET", "/bookings/{booking_id}", get_booking),
    ("DELETE", "/bookings/{booking_id}", cancel_booking),
]


def make_partner_app(service: PartnerService, env: Mapping[str, str]) -> web.Application:
    """The partner API as a sub-application, mounted at /api/v1 beside the webhook, health check and feeds."""
    keys = KeyRing(service.practice, env)
    app = web.Application(middlewares=[_make_middleware(keys)])
    app[SERVICE_KEY] = service
    app[KEYS_KEY] = keys
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
    return app


def mount(root: web.Application, service: PartnerService, env: Mapping[str, str]) -> None:
    """Add the partner API under /api/v1 to the bot's web application."""
    root.add_subapp(PREFIX, make_partner_app(service, env))
