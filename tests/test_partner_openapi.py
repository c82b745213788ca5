"""The OpenAPI 3.1 document: valid, naming exactly the routes served, and describing what they answer."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp import web
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from partner_api.app import PREFIX
from tests.fixtures.partner import MONDAY, SATURDAY_NINE, PartnerSite, booking_body


def served_routes(root: web.Application) -> set[tuple[str, str]]:
    """(method, path) of every route of the mounted partner API, paths relative to its prefix."""
    (sub,) = [r for r in root.router.resources() if isinstance(r, web.PrefixedSubAppResource)]
    app: web.Application = sub.get_info()["app"]
    return {
        (route.method.lower(), route.resource.canonical.removeprefix(PREFIX))
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }


def check(doc: dict[str, Any], method: str, path: str, status: int, body: Any) -> None:
    """The answer matches the document's schema for this route and status."""
    response = doc["paths"][path][method]["responses"][str(status)]
    schema = response["content"]["application/json"]["schema"]
    Draft202012Validator({**schema, "components": doc["components"]}).validate(body)


async def test_document_is_valid_and_names_every_route(site: PartnerSite) -> None:
    resp = await site.http.get("/api/v1/openapi.json")  # no key needed to read the contract
    assert resp.status == 200
    doc = await resp.json()
    validate(doc)
    assert doc["openapi"].startswith("3.1")
    documented = {(method, path) for path, item in doc["paths"].items() for method in item}
    assert documented == served_routes(site.http.app)


async def test_answers_match_the_document(site: PartnerSite) -> None:
    doc = await (await site.http.get("/api/v1/openapi.json")).json()
    auth = site.auth()

    resp = await site.http.get("/api/v1/services", headers=auth)
    check(doc, "get", "/services", resp.status, await resp.json())
    resp = await site.http.get("/api/v1/slots?service=consult&from=2026-12-01&to=2026-12-02", headers=auth)
    check(doc, "get", "/slots", resp.status, await resp.json())
    resp = await site.http.get("/api/v1/slots?service=nope", headers=auth)
    check(doc, "get", "/slots", resp.status, await resp.json())

    created = await site.http.post("/api/v1/bookings", json=booking_body(), headers=auth)
    assert created.status == 201
    booking = await created.json()
    check(doc, "post", "/bookings", 201, booking)
    saturday = booking_body(start=SATURDAY_NINE.isoformat())  # only Ana works then
    assert (await site.http.post("/api/v1/bookings", json=saturday, headers=auth)).status == 201
    taken = await site.http.post("/api/v1/bookings", json=saturday, headers=auth)
    assert taken.status == 409
    check(doc, "post", "/bookings", 409, await taken.json())
    soon = booking_body(start=(MONDAY + timedelta(hours=1)).isoformat())
    resp = await site.http.post("/api/v1/bookings", json=soon, headers=auth)
    check(doc, "post", "/bookings", resp.status, await resp.json())

    path = f"/api/v1/bookings/{booking['id']}"
    resp = await site.http.get(path, headers=auth)
    check(doc, "get", "/bookings/{booking_id}", resp.status, await resp.json())
    resp = await site.http.get(path, headers=site.auth("portal"))
    check(doc, "get", "/bookings/{booking_id}", resp.status, await resp.json())
    resp = await site.http.get("/api/v1/bookings?since=0", headers=auth)
    check(doc, "get", "/bookings", resp.status, await resp.json())
    resp = await site.http.delete(path, headers=auth)
    check(doc, "delete", "/bookings/{booking_id}", resp.status, await resp.json())
    assert "401" in doc["paths"]["/bookings"]["post"]["responses"]
