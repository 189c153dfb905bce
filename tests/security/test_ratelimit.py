"""The login limiter on its own: counting, windows, taking a success back, bounded memory."""

from __future__ import annotations

from plantwire.security.ratelimit import LoginLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_attempts_are_counted_before_they_are_judged() -> None:
    clock = Clock()
    limiter = LoginLimiter(per_user=3, per_address=100, window_seconds=60, clock=clock)
    assert [limiter.attempt("Ann", "10.0.0.1") for _ in range(3)] == [0, 0, 0]
    assert limiter.attempt("ann", "10.0.0.2") == 60  # the username, in any case
    clock.now += 59
    assert limiter.attempt("ANN", "10.0.0.3") == 1
    clock.now += 1
    assert limiter.attempt("ann", "10.0.0.3") == 0


def test_a_success_clears_the_user_and_takes_its_attempt_back() -> None:
    limiter = LoginLimiter(per_user=2, per_address=2, window_seconds=60, clock=Clock())
    assert limiter.attempt("ann", "10.0.0.1") == 0
    limiter.succeeded("ann", "10.0.0.1")
    assert limiter.attempt("bob", "10.0.0.1") == 0
    assert limiter.attempt("cid", "10.0.0.1") == 0  # the success did not use up the address
    assert limiter.attempt("dan", "10.0.0.1") > 0


def test_memory_is_swept_of_expired_keys() -> None:
    clock = Clock()
    limiter = LoginLimiter(per_user=5, per_address=5, window_seconds=10, clock=clock)
    for n in range(1000):
        limiter.attempt(f"user-{n}", f"10.0.{n // 250}.{n % 250}")
    assert limiter.tracked_keys() == 2000
    clock.now += 11
    for n in range(100):  # keys never seen again still go, at the next sweep
        limiter.attempt(f"other-{n}", "10.9.9.9")
    assert limiter.tracked_keys() <= 101 + 1
