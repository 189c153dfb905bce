"""Serving the platform's app over HTTP(S) with uvicorn (``plantwire up``; tests serve it on
ephemeral ports the same way)."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import uvicorn

from plantwire.platform import Platform

__all__ = ["PlatformServer"]


class PlatformServer(uvicorn.Server):
    """uvicorn's server, which ends the platform's live streams as soon as it begins to shut
    down.

    uvicorn lets every open response finish before it runs the app's shutdown (the lifespan),
    and a live stream does not finish by itself: without this, stopping a platform that has a
    console open would wait for the stream's time to run out."""

    def __init__(
        self, config: uvicorn.Config, platform: Platform, *, handle_signals: bool = True
    ) -> None:
        super().__init__(config)
        self.platform = platform
        self.handle_signals = handle_signals

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """uvicorn's own Ctrl-C handling, unless the process runs more than this server
        (``plantwire up --demo``) and stops them all itself."""
        if not self.handle_signals:
            yield
            return
        with super().capture_signals():
            yield

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.platform.live is not None:
            self.platform.live.close()
        await super().shutdown(sockets)
