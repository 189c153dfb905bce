"""``plantwire up`` in a process that kills itself with SIGKILL right after the N-th commit of
its time-series store, before ingest acks that batch: ``python up_child.py N up --data-dir …``.

Everything else is the real command (``plantwire.cli.main``, what the ``plantwire`` script
runs); only ``DuckDBStore.append`` is wrapped, as ``ingest_child.py`` wraps it for ingest
alone. The append runs in a worker thread and ingest acks on the event loop once it has
returned, so the kill lands after the commit and before the ack every time. The last line on
stderr names the stream sequence that commit applied."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Mapping

from plantwire.cli import main
from plantwire.telemetry.store import DuckDBStore, PointBatch


def kill_after_commit(count: int) -> None:
    commit = DuckDBStore.append
    appends = 0

    def append(
        self: DuckDBStore,
        batch: PointBatch,
        checkpoint: tuple[str, int] | None = None,
        states: Mapping[str, bytes | None] | None = None,
    ) -> None:
        nonlocal appends
        commit(self, batch, checkpoint, states)
        appends += 1
        if appends == count:
            sequence = checkpoint[1] if checkpoint is not None else None
            os.write(2, f"up_child: killed after committing sequence {sequence}\n".encode())
            os.kill(os.getpid(), signal.SIGKILL)

    DuckDBStore.append = append  # type: ignore[method-assign]


if __name__ == "__main__":
    kill_after_commit(int(sys.argv[1]))
    sys.argv = ["plantwire", *sys.argv[2:]]
    main()
