"""Runs the plant in scaled real time behind its OPC UA and Modbus servers.

Every ``tick_s`` of wall time the runner takes the setpoints clients wrote over OPC UA, steps
the plant as many fixed steps as ``speed`` times the wall time elapsed calls for, hands the
finished parts to the listeners and publishes the new snapshot to both servers. The plant
steps in fixed increments whatever the wall clock does, so with the same seed and the same
setpoints it goes through the same states: only how many steps a tick takes varies.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType

from plantwire.signals import stop_on_signals
from plantwire.sim.modbus import MeterModbusServer
from plantwire.sim.opcua import NAMESPACE_URI, PlantOpcUaServer
from plantwire.sim.plant import PartRecord, Plant, PlantSnapshot

__all__ = ["PartListener", "SimEndpoints", "Simulator", "serve"]

PartListener = Callable[[PartRecord], None]
_MAX_STEPS_PER_TICK = 5000  # beyond this the plant falls behind the clock rather than the loop


@dataclass(frozen=True, slots=True)
class SimEndpoints:
    """Where a running simulator is reached (the ports actually bound)."""

    opcua_url: str
    namespace_uri: str
    modbus_host: str
    modbus_port: int
    modbus_units: dict[str, int]  # line → the Modbus unit id of its meter

    @property
    def modbus_url(self) -> str:
        host = f"[{self.modbus_host}]" if ":" in self.modbus_host else self.modbus_host
        return f"modbus+tcp://{host}:{self.modbus_port}"


class Simulator:
    """The plant, its two servers and the loop that drives them. Use as ``async with``, or
    ``start()`` and ``stop()``; port 0 binds a free port (``endpoints`` says which).
    ``speed`` is simulated seconds per wall second; 0 holds the plant still except for
    ``advance`` (tests step it exactly that way)."""

    def __init__(
        self,
        *,
        seed: int = 0,
        speed: float = 1.0,
        host: str = "127.0.0.1",
        opcua_port: int = 4840,
        modbus_port: int = 5020,
        tick_s: float = 0.1,
        start: datetime | None = None,
    ) -> None:
        if not speed >= 0:
            raise ValueError("speed must not be negative")
        if not tick_s > 0:
            raise ValueError("tick_s must be positive")
        if start is None:
            start = datetime.now(UTC).replace(microsecond=0)
        self.plant = Plant(seed=seed, start=start)
        self.speed = speed
        self.tick_s = tick_s
        self._host = host
        self._opcua = PlantOpcUaServer(self.plant.machines, host, opcua_port)
        self._modbus_port = modbus_port
        self._modbus: MeterModbusServer | None = None
        self._listeners: list[PartListener] = []
        self._task: asyncio.Task[None] | None = None
        self._endpoints: SimEndpoints | None = None
        self.snapshot: PlantSnapshot = self.plant.snapshot()

    @property
    def endpoints(self) -> SimEndpoints:
        if self._endpoints is None:
            raise RuntimeError("the simulator has not started")
        return self._endpoints

    def add_part_listener(self, listener: PartListener) -> None:
        """Call ``listener`` with each finished part, in order, on the event loop (it must
        not block or raise: an exception stops the simulator, and ``stop`` re-raises it)."""
        self._listeners.append(listener)

    async def start(self) -> SimEndpoints:
        opcua_url = await self._opcua.start(self.snapshot)
        try:
            self._modbus = MeterModbusServer(
                self.plant.lines, self.snapshot, self._host, self._modbus_port
            )
            await self._modbus.start()
        except BaseException:
            await self._opcua.stop()
            raise
        self._endpoints = SimEndpoints(
            opcua_url=opcua_url,
            namespace_uri=NAMESPACE_URI,
            modbus_host=self._host,
            modbus_port=self._modbus.port,
            modbus_units={line.name: line.meter_unit for line in self.plant.lines},
        )
        self._task = asyncio.create_task(self._run(), name="plantwire-sim")
        return self._endpoints

    async def stop(self) -> None:
        task, self._task = self._task, None
        try:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        finally:
            if self._modbus is not None:
                await self._modbus.stop()
                self._modbus = None
            await self._opcua.stop()

    async def wait(self) -> None:
        """Return when the simulator stops by itself (a listener raised; ``stop`` says
        what), or at once if it is not running."""
        if self._task is not None:
            await asyncio.wait({self._task})

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _apply_setpoints(self) -> None:
        current = self.plant.speed_setpoints()
        for machine, wanted in self._opcua.setpoints().items():
            if wanted == current[machine]:
                continue
            if math.isfinite(wanted):
                applied = self.plant.set_speed_setpoint(machine, wanted)
            else:  # NaN or infinite: refused, the setpoint stays
                applied = current[machine]
            if applied != wanted:  # clients read back what the plant took
                await self._opcua.write_setpoint(machine, applied)

    async def advance(self, steps: int) -> PlantSnapshot:
        """Take the setpoints clients wrote, step the plant ``steps`` times (besides what the
        clock does; with ``speed`` 0 only this steps it) and publish where it is."""
        await self._apply_setpoints()
        for _ in range(steps):
            for part in self.plant.step():
                for listener in self._listeners:
                    listener(part)
        self.snapshot = self.plant.snapshot()
        await self._opcua.publish(self.snapshot)
        if self._modbus is not None:
            self._modbus.publish(self.snapshot)
        return self.snapshot

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        began, clock_steps = loop.time(), 0
        next_tick = began
        while True:
            next_tick += self.tick_s
            await asyncio.sleep(max(0.0, next_tick - loop.time()))
            due = int((loop.time() - began) * self.speed / self.plant.step_s)
            steps = min(due - clock_steps, _MAX_STEPS_PER_TICK)
            if steps > 0:
                clock_steps += steps
                await self.advance(steps)
            else:
                await self._apply_setpoints()
            if loop.time() > next_tick + 10 * self.tick_s:  # fell far behind: do not catch up
                next_tick = loop.time()


async def serve(simulator: Simulator, ready: Callable[[SimEndpoints], None]) -> None:
    """Run ``simulator`` until SIGINT or SIGTERM (Ctrl-C where signals cannot be handled so),
    calling ``ready`` with its endpoints once both servers listen."""
    stop = asyncio.Event()
    with stop_on_signals(stop):
        ready(await simulator.start())
        waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(simulator.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
            await simulator.stop()
