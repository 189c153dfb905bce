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

    def forget_one(self, key: str) -> None:
        stamps = self.failures.get(key)
        if stamps:
            stamps.pop()
            if not stamps:
                del self.failures[key]

    def sweep(self, now: float) -> None:
        for key in list(self.failures):
            self._trim(key, now)


class LoginLimiter:
    """Counts login attempts per username and per source address.

    ``attempt`` is called before the password is checked: under one lock it either refuses
    (the seconds to wait) or counts the attempt as a failure, so parallel requests cannot
    all slip in before any failure is recorded. ``succeeded`` then takes the attempt back."""

    _SWEEP_EVERY = 1024  # attempts between sweeps of keys not seen again

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
        self._since_sweep = 0

    def attempt(self, username: str, address: str) -> int:
        """0 and the attempt is counted, or the seconds to wait before trying again."""
        user = username.casefold()
        with self._lock:
            now = self._clock()
            self._since_sweep += 1
            if self._since_sweep >= self._SWEEP_EVERY:
                self._since_sweep = 0
                self._users.sweep(now)
                self._addresses.sweep(now)
            wait = max(
                self._users.retry_after(user, now), self._addresses.retry_after(address, now)
            )
            if wait:
                return wait
            self._users.add(user, now)
            self._addresses.add(address, now)
            return 0

    def succeeded(self, username: str, address: str) -> None:
        """The attempt was right: clear the username's failures, take back this one."""
        with self._lock:
            self._users.clear(username.casefold())
            self._addresses.forget_one(address)

    def tracked_keys(self) -> int:
        """How many usernames and addresses are remembered (memory stays bounded by this)."""
        with self._lock:
            return len(self._users.failures) + len(self._addresses.failures)
