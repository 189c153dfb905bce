"""Purging a NATS account's JetStream state: the request ``$JS.API.ACCOUNT.PURGE.<account>``,
which only nats-server's system account may make. On a single server it deletes every
stream of the account (MQTT's sessions, subscriptions and retained messages among them) and
the account's folder in the JetStream store, and then answers. ``broker.py`` purges the
accounts of tenants taken off the bundled broker with it.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import nats
import nats.errors

from plantwire.telemetry.natsconf import ACCOUNT_PURGE_SUBJECT

__all__ = ["PurgeError", "purge_account"]

#: Connecting and the answer, together (a purge deletes a handful of small MQTT streams).
_SECONDS = 10.0


class PurgeError(Exception):
    """The account was not purged; the message says why."""


def purge_account(url: str, *, user: str, password: str, account: str) -> None:
    """Purge ``account`` as ``user`` of the system account, and return once the server says
    it did. Blocking: the request runs on an event loop of its own, in a thread of its own,
    so any thread may call this (one running an event loop too)."""
    subject = f"{ACCOUNT_PURGE_SUBJECT}.{account}"
    with ThreadPoolExecutor(1, thread_name_prefix="plantwire-purge") as pool:
        answer = pool.submit(lambda: asyncio.run(_request(url, user, password, subject))).result()
    try:
        decoded = json.loads(answer)
    except ValueError as error:
        raise PurgeError(f"{subject} answered {answer[:200]!r}") from error
    if not isinstance(decoded, dict) or decoded.get("error") or not decoded.get("initiated"):
        raise PurgeError(f"{subject} answered {decoded!r}")


async def _request(url: str, user: str, password: str, subject: str) -> bytes:
    try:
        async with asyncio.timeout(_SECONDS):
            client = await nats.connect(
                url, user=user, password=password, allow_reconnect=False, connect_timeout=2
            )
    except (OSError, TimeoutError, nats.errors.Error) as error:
        raise PurgeError(f"cannot connect to {url} as {user}: {error!r}") from error
    try:
        reply = await client.request(subject, b"", timeout=_SECONDS)
    except (TimeoutError, nats.errors.Error) as error:  # no answer, no responders
        raise PurgeError(f"no answer to {subject}: {error!r}") from error
    finally:
        await client.close()
    return reply.data
