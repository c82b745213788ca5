"""Partner webhooks: every change of a partner booking POSTed, signed, retried with backoff, in order per booking."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

import aiohttp

from scheduling.config import Practice
from scheduling.db import PartnerEventRow
from scheduling.partner_store import change_view
from scheduling.queue import Drainer
from scheduling.store import Store

log = logging.getLogger(__name__)

TIMEOUT = aiohttp.ClientTimeout(total=10)
LEASE = timedelta(seconds=60)
SIGNATURE_HEADER = "X-Bookingbot-Signature"
TIMESTAMP_HEADER = "X-Bookingbot-Timestamp"


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256 over `<timestamp>.<body>`: a partner checks it and the timestamp's age."""
    return "sha256=" + hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def webhook_secrets(practice: Practice, env: Mapping[str, str]) -> dict[str, bytes]:
    """Each partner's signing secret, read from the environment variable its configuration names."""
    found: dict[str, bytes] = {}
    for partner in practice.partners:
        if not partner.webhook_url:
            continue
        secret = env.get(partner.webhook_secret_env, "").strip()
        if secret:
            found[partner.id] = secret.encode("utf-8")
        else:
            log.warning(
                "partner %s: no webhook secret in $%s; its webhooks wait", partner.id, partner.webhook_secret_env
            )
    return found


class WebhookWorker(Drainer):
    """Delivers queued partner events: at least once, oldest first and one at a time per booking."""

    name = "partner webhooks"

    def __init__(
        self,
        practice: Practice,
        store: Store,
        secrets: Mapping[str, bytes],
        clock: Callable[[], datetime],
        *,
        batch: int = 20,
    ) -> None:
        super().__init__()
        self.practice = practice
        self.store = store
        self.secrets = dict(secrets)
        self.clock = clock
        self.batch = batch
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def run_once(self) -> int:
        """Deliver the events due now; returns how many the partners accepted."""
        async with self.store.tx() as tx:
            rows = await tx.partners.claim_deliveries(self.clock(), limit=self.batch, lease=LEASE)
        done = 0
        for row in rows:
            if await self._deliver(row):
                done += 1
        return done

    async def _deliver(self, row: PartnerEventRow) -> bool:
        partner = self.practice.partner_by_id.get(row.partner_id)
        if partner is None or not partner.webhook_url:
            # Nobody to post to: the change stays in the feed for polling.
            async with self.store.tx() as tx:
                await tx.partners.delivered(row.id, self.clock())
            return True
        error = await self._post(partner.webhook_url, row)
        async with self.store.tx() as tx:
            if error is None:
                await tx.partners.delivered(row.id, self.clock())
                return True
            next_at = await tx.partners.delivery_failed(row.id, self.clock(), error)
        log.warning(
            "webhook %s to partner %s failed (%s); next attempt at %s",
            row.id,
            partner.id,
            error,
            next_at.isoformat(),
        )
        return False

    async def _post(self, url: str, row: PartnerEventRow) -> str | None:
        """POST one event; None when the partner answered 2xx, else a short error without client data."""
        secret = self.secrets.get(row.partner_id)
        if secret is None:
            return "no signing secret configured"
        body = json.dumps(change_view(row), separators=(",", ":")).encode("utf-8")
        timestamp = int(self.clock().timestamp())
        headers = {
            "Content-Type": "application/json",
            "X-Bookingbot-Event": row.event,
            "X-Bookingbot-Delivery": str(row.id),
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(secret, timestamp, body),
        }
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=TIMEOUT)
        try:
            async with self._session.post(url, data=body, headers=headers, allow_redirects=False) as resp:
                if 200 <= resp.status < 300:
                    return None
                return f"HTTP {resp.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            return type(exc).__name__
