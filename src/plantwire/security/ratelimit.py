"""Failed-login limiting, per username and per source address (sliding window).

Counts live in the API process's memory: one platform process by default. Deployments with
several API workers get the limit per worker (documented in docs/security.md)."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

__all__ = ["LoginLimiter"]


class _Window:
    def __init__(self, limit: int, seconds: float, clock: Callable[[], float]) -> None:
        self.limit = limit
        self.seconds = seconds
        self.clock = clock
        self.failures: dict[str, deque[float]] = {}

    def _trim(self, key: str, now: float) -> deque[float] | None:
        stamps = self.failures.get(key)
        if stamps is None:
            return None
        while stamps and stamps[0] <= now - self.seconds:
            stamps.popleft()
        if not stamps:
            del self.failures[key]
            return None
        return stamps

    def retry_after(self, key: str, now: float) -> int:
        stamps = self._trim(key, now)
        if stamps is None or len(stamps) < self.limit:
            return 0
        return max(1, math.ceil(stamps[-self.limit] + self.seconds - now))

    def add(self, key: str, now: float) -> None:
        self._trim(key, now)
        self.failures.setdefault(key, deque()).append(now)

    def clear(self, key: str) -> None:
        self.failures.pop(key, None)


class LoginLimiter:
    """``retry_after`` tells how many seconds a login attempt must wait (0: go ahead)."""

    def __init__(
        self,
        per_user: int,
        per_address: int,
        window_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._users = _Window(per_user, window_seconds, clock)
        self._addresses = _Window(per_address, window_seconds, clock)

    def retry_after(self, username: str, address: str) -> int:
        with self._lock:
            now = self._clock()
            return max(
                self._users.retry_after(username.casefold(), now),
                self._addresses.retry_after(address, now),
            )

    def failed(self, username: str, address: str) -> None:
        with self._lock:
            now = self._clock()
            self._users.add(username.casefold(), now)
            self._addresses.add(address, now)

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._users.clear(username.casefold())
