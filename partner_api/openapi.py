"""The OpenAPI 3.1 document of the partner API (a test checks every route and answer against it)."""

from __future__ import annotations

from typing import Any

from scheduling.conflicts import ProblemKind
from scheduling.model import Channel

_STRING = {"type": "string"}
_TIME = {"type": "string", "format": "date-time"}
_CHANNEL = {"type": "string", "enum": [str(c) for c in Channel]}
_STATUS = ["confirmed", "refused", "cancelled", "completed", "no_show", "requested", "declined", "expired"]
_EVENTS = ["confirmed", "refused", "cancelled", "moved", "completed", "no_show"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: dict[str, Any], *, optional: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": [k for k in properties if k not in optional],
        "additionalProperties": False,
    }


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_SCHEMAS: dict[str, Any] = {
    "Service": _object(
        {
            "id": _STRING,
            "name": _STRING,
            "category": _STRING,
            "duration_minutes": {"type": "integer"},
            "channels": {"type": "array", "items": _CHANNEL},
            "instructions": _STRING,
        }
    ),
    "Location": _object(
        {
            "id": _STRING,
            "name": _STRING,
            "address": _STRING,
            "kind": {"type": "string", "enum": ["on_site", "online"]},
            "time_zone": {"type": "string", "description": "IANA zone the location's times are shown in"},
        }
    ),
    "Slot": _object(
        {
            "start": _TIME,
            "end": _TIME,
            "location": _ref("Location"),
            "channels": {"type": "array", "items": _CHANNEL},
            "specialists": {
                "type": "array",
                "items": _object({"id": _STRING, "name": _STRING}),
                "description": "specialists free at this start; one is assigned at random unless one is requested",
            },
        }
    ),
    "Booking": _object(
        {
            "id": _STRING,
            "status": {"type": "string", "enum": _STATUS},
            "service": _STRING,
            "specialist": _STRING,
            "location": _STRING,
            "channel": _CHANNEL,
            "start": _TIME,
            "end": _TIME,
            "client_ref": {"type": "string", "description": "the partner's own client reference"},
            "created_at": _TIME,
            "updated_at": _TIME,
            "refusal_until": {
                "type": "string",
                "format": "date-time",
                "description": "until then the specialist may refuse the booking",
            },
        }
    ),
    "BookingRequest": _object(
        {
            "service": _STRING,
            "start": {"type": "string", "format": "date-time", "description": "with an offset, e.g. ...Z"},
            "channel": _CHANNEL,
            "client": _object(
                {
                    "name": {"type": "string", "maxLength": 200},
                    "phone": {"type": "string", "description": "international form, +48..."},
                    "email": {"type": "string"},
                    "reference": {"type": "string", "maxLength": 200},
                },
                optional=("email",),
            ),
            "note": {"type": "string", "maxLength": 2000},
            "location": _STRING,
            "specialist": {"type": "string", "description": "a returning client's specialist; honoured when free"},
        },
        optional=("note", "location", "specialist"),
    ),
    "Change": _object(
        {
            "cursor": {"type": "integer", "description": "pass as `since` to get the changes after this one"},
            "event": {"type": "string", "enum": _EVENTS},
            "at": _TIME,
            "booking": _ref("Booking"),
        }
    ),
    "Changes": _object({"changes": {"type": "array", "items": _ref("Change")}, "next": {"type": "integer"}}),
    "Problem": _object(
        {
            "kind": {"type": "string", "enum": [str(k) for k in ProblemKind]},
            "busy_start": _TIME,
            "busy_end": _TIME,
        },
        optional=("busy_start", "busy_end"),
    ),
    "FieldProblem": _object(
        {"kind": {"const": "invalid_field"}, "field": _STRING, "message": _STRING},
    ),
    "Error": {
        "type": "object",
        "properties": {
            "error": {
                "type": "string",
                "enum": [
                    "invalid_request",
                    "rules_broken",
                    "idempotency_key_reused",
                    "slot_taken",
                    "not_found",
                    "cancellation_closed",
                    "not_cancellable",
                    "rate_limited",
                    "body_too_large",
                    "calendar_unavailable",
                ],
            },
            "problems": {"type": "array", "items": {"anyOf": [_ref("Problem"), _ref("FieldProblem")]}},
            "alternatives": {"type": "array", "items": _ref("Slot")},
            "status": _STRING,
            "retry_after": {"type": "integer"},
            "limit": {"type": "integer"},
        },
        "required": ["error"],
        "additionalProperties": False,
    },
}

_UNAUTHORIZED = {"description": "missing or wrong API key (no detail is given)"}
_RATE = {
    "description": "too many calls with this key",
    "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}},
    "content": {"application/json": {"schema": _ref("Error")}},
}
_INVALID = _json(_ref("Error"), "invalid request or broken rules")
_NOT_FOUND = _json(_ref("Error"), "no booking of this partner has that id")
_BOOKING_ID = {"name": "booking_id", "in": "path", "required": True, "schema": _STRING}


def _secured(responses: dict[str, Any]) -> dict[str, Any]:
    return {**responses, "401": _UNAUTHORIZED, "429": _RATE}


def document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "bookingbot partner API",
            "version": "1.0.0",
            "description": "Book visits in the slots a practice opened to your organisation, under your "
            "organisation's rules. Every change of a booking is in the changes feed and, when a webhook is "
            "configured, posted to it signed with HMAC-SHA256 over `<timestamp>.<body>`.",
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": _SCHEMAS,
        },
        "paths": {
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "security": [],
                    "responses": {"200": {"description": "the OpenAPI document", "content": {"application/json": {}}}},
                }
            },
            "/services": {
                "get": {
                    "summary": "Services your organisation may book",
                    "responses": _secured(
                        {
                            "200": _json(
                                _object({"services": {"type": "array", "items": _ref("Service")}}),
                                "the services",
                            )
                        }
                    ),
                }
            },
            "/slots": {
                "get": {
                    "summary": "Free starts in the windows open to your organisation",
                    "parameters": [
                        {"name": "service", "in": "query", "required": True, "schema": _STRING},
                        {
                            "name": "from",
                            "in": "query",
                            "required": True,
                            "schema": {"type": "string", "format": "date"},
                        },
                        {"name": "to", "in": "query", "required": True, "schema": {"type": "string", "format": "date"}},
                        {"name": "specialist", "in": "query", "required": False, "schema": _STRING},
                    ],
                    "responses": _secured(
                        {
                            "200": _json(
                                _object({"service": _STRING, "slots": {"type": "array", "items": _ref("Slot")}}),
                                "free starts, by start",
                            ),
                            "422": _INVALID,
                        }
                    ),
                }
            },
            "/bookings": {
                "post": {
                    "summary": "Book a visit (confirmed at once)",
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string", "maxLength": 255},
                            "description": "a retried POST with the same key returns the first result",
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("BookingRequest")}},
                    },
                    "responses": _secured(
                        {
                            "201": _json(_ref("Booking"), "booked (or the first result of this idempotency key)"),
                            "409": _json(_ref("Error"), "the time is taken; `alternatives` lists the nearest free"),
                            "413": _json(_ref("Error"), "body over 64 KB"),
                            "422": _INVALID,
                            "503": _json(_ref("Error"), "the calendar could not be checked; retry later"),
                        }
                    ),
                },
                "get": {
                    "summary": "Changes of your bookings after a cursor (for polling)",
                    "parameters": [
                        {"name": "since", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0}}
                    ],
                    "responses": _secured({"200": _json(_ref("Changes"), "up to 100 changes"), "422": _INVALID}),
                },
            },
            "/bookings/{booking_id}": {
                "get": {
                    "summary": "One of your bookings",
                    "parameters": [_BOOKING_ID],
                    "responses": _secured({"200": _json(_ref("Booking"), "the booking"), "404": _NOT_FOUND}),
                },
                "delete": {
                    "summary": "Cancel a booking for your client (until your cancellation deadline)",
                    "parameters": [_BOOKING_ID],
                    "responses": _secured(
                        {
                            "200": _json(_ref("Booking"), "cancelled"),
                            "404": _NOT_FOUND,
                            "409": _json(_ref("Error"), "past the cancellation deadline, or no longer cancellable"),
                        }
                    ),
                },
            },
        },
    }
