"""Rate limits kept in the database, so every worker process and every replica counts the same hits.

Fixed one-minute windows, counted with one atomic upsert per request in the ``rate_counter``
table. Buckets are HMACs of an identity or address (the raw values are never stored). Clocks of
replicas are assumed to agree to within a second or two (NTP), as the windows are wall-clock minutes.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError

from search_service.store import Store

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60  # the limits are "per minute"
# Someone mistyping a token retries a handful of times; a guesser needs astronomically many tries.
FAILED_AUTH_PER_MINUTE = 10


class RateLimiter:
    """Per-identity request limits and per-address failed-authentication limits, shared through the store.

    When the database cannot count (read-only, gone), requests are let through and the fault is
    logged: a search needs no database, and readiness reports the store's health.
    """

    def __init__(self, per_minute: int, *, failed_auth_per_minute: int = FAILED_AUTH_PER_MINUTE,
                 clock: Callable[[], float] = time.time) -> None:
        self.per_minute = per_minute
        self.failed_auth_per_minute = failed_auth_per_minute
        self.clock = clock
        self._pruned_before = 0
        self._fault_window = -1

    def _window(self) -> tuple[int, float]:
        """The current window's start (epoch seconds) and the seconds until the next one."""
        now = self.clock()
        start = int(now // WINDOW_SECONDS) * WINDOW_SECONDS
        return start, start + WINDOW_SECONDS - now

    def take(self, store: Store, identity: str) -> float:
        """Count a request by ``identity``: 0 when allowed, else the seconds until it may retry."""
        start, left = self._window()
        hits = self._count(store, "request:" + identity, start)
        return left if hits > self.per_minute else 0.0

    def failures_wait(self, store: Store, address: str) -> float:
        """0 while ``address`` may still try to authenticate, else the seconds until it may."""
        start, left = self._window()
        try:
            failures = store.hits(store.hash_user("auth-failure:" + address), start)
        except SQLAlchemyError as exc:
            self._fault(start, exc)
            return 0.0
        return left if failures >= self.failed_auth_per_minute else 0.0

    def record_failure(self, store: Store, address: str) -> None:
        """Count a failed authentication from ``address``."""
        start, _ = self._window()
        self._count(store, "auth-failure:" + address, start)

    def _count(self, store: Store, key: str, start: int) -> int:
        try:
            if start > self._pruned_before:  # once per window and process: drop windows that are over
                store.prune_rate_counters(start - WINDOW_SECONDS)
                self._pruned_before = start
            return store.count_hit(store.hash_user(key), start)
        except SQLAlchemyError as exc:
            self._fault(start, exc)
            return 0

    def _fault(self, start: int, exc: SQLAlchemyError) -> None:
        if start != self._fault_window:  # once a window, not once a request
            self._fault_window = start
            logger.error("rate limits are not enforced: the database cannot count requests (%s)", exc)


def retry_after(wait: float) -> str:
    """A Retry-After header value: whole seconds, at least 1."""
    return str(max(1, math.ceil(wait)))
