"""API keys from the environment (several per partner, for rotation), compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from scheduling.config import Partner, Practice

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: the partner and which of its keys (the rate limit is per key)."""

    partner: Partner
    key_name: str  # the environment variable's name, never the key


def _digest(value: str) -> bytes:
    # Equal-length digests: compare_digest then takes the same time whatever the key's length.
    return hashlib.sha256(value.encode("utf-8")).digest()


class KeyRing:
    """Every configured partner key; `caller` finds whose key a bearer token is."""

    def __init__(self, practice: Practice, env: Mapping[str, str]):
        self._keys: list[tuple[bytes, Caller]] = []
        for partner in practice.partners:
            for name in partner.key_envs:
                key = env.get(name, "").strip()
                if not key:
                    log.warning("partner %s: no API key in $%s; that key is not accepted", partner.id, name)
                    continue
                self._keys.append((_digest(key), Caller(partner, name)))

    def caller(self, authorization: str | None) -> Caller | None:
        """The caller of an `Authorization: Bearer <key>` header, or None."""
        scheme, _, token = (authorization or "").partition(" ")
        given = _digest(token.strip() if scheme.lower() == "bearer" else "")
        found: Caller | None = None
        # Every key is compared, match or not, so the time taken tells nothing about which was close.
        for digest, caller in self._keys:
            if hmac.compare_digest(digest, given) and token.strip():
                found = caller
        return found
