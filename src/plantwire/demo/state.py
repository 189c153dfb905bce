"""The demo's secrets, made once and kept in the data dir: the demo user's password and the
secret the identifier hierarchy's administrators' keys derive from (so a second run finds
the nodes' records administered by the keys it holds)."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DemoSecrets", "load_or_create"]


@dataclass(frozen=True, slots=True)
class DemoSecrets:
    password: str  # the demo user's (printed, and in demo.json)
    ids_secret: str  # the demo hierarchy's administrators' secret keys derive from it
    created: bool = False  # made just now (no secrets file, or a damaged one)


def load_or_create(path: Path) -> DemoSecrets:
    """The secrets in ``path`` (JSON, readable by the owner only), made on first use."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return DemoSecrets(password=str(raw["password"]), ids_secret=str(raw["ids_secret"]))
    except FileNotFoundError:
        pass
    except (ValueError, KeyError, TypeError):  # damaged: make new ones (the demo's own)
        path.unlink()
    made = DemoSecrets(password=secrets.token_urlsafe(12), ids_secret=secrets.token_urlsafe(18))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"password": made.password, "ids_secret": made.ids_secret}, handle)
    return DemoSecrets(made.password, made.ids_secret, created=True)
