"""Stopping a long-running command on SIGINT (Ctrl-C) or SIGTERM, the same way everywhere."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator

__all__ = ["stop_on_signals"]


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """While inside, SIGINT and SIGTERM set ``stop`` (on the running loop) instead of raising
    KeyboardInterrupt or ending the process; the handlers are removed on leaving. Where the
    loop cannot handle signals (Windows), Ctrl-C stays a KeyboardInterrupt."""
    loop = asyncio.get_running_loop()
    handled = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
            handled.append(signum)
    try:
        yield
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)
