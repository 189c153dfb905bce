"""The simulated plant, sans-I/O: machines, energy meters and the parts they make.

Everything here is a pure function of the seed, the start time and the calls made: the plant
advances in fixed steps of ``step_s`` simulated seconds (``Plant.step``), and two plants with the
same seed given the same calls follow the same trajectory, value for value. The servers in
``opcua.py`` and ``modbus.py`` only publish what ``Plant.snapshot`` says.

Dynamics: each measured quantity follows a first-order lag towards a target that depends on the
machine's state and speed (``x += (target - x) * (1 - exp(-dt / tau))``, exact for any step),
plus Gaussian measurement noise, clipped to the sensor's range. Faults are injected at random
(or by ``Plant.inject_fault``): bearing wear makes vibration rise for a while before the machine
trips, overheating makes the temperature rise, a sensor failure trips at once and leaves the
vibration reading bad.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum

__all__ = [
    "AMBIENT_C",
    "LINES",
    "MACHINES",
    "FaultKind",
    "LineSpec",
    "MachineKind",
    "MachineSnapshot",
    "MachineSpec",
    "MachineState",
    "MeterSnapshot",
    "PartRecord",
    "Plant",
    "PlantSnapshot",
    "Quality",
]

AMBIENT_C = 22.0
NOMINAL_VOLTAGE_V = 400.0  # line to line, three-phase
NOMINAL_FREQUENCY_HZ = 50.0


class MachineKind(StrEnum):
    CNC = "cnc"
    PRESS = "press"


class MachineState(StrEnum):
    RUNNING = "running"
    IDLE = "idle"
    FAULT = "fault"
    SETUP = "setup"


class FaultKind(StrEnum):
    BEARING_WEAR = "bearing_wear"  # vibration rises over minutes, then the machine trips
    OVERHEAT = "overheat"  # temperature rises (a coolant or lubrication failure), then trips
    SENSOR = "sensor"  # the vibration sensor fails: its reading is bad, protection trips


class Quality(StrEnum):
    GOOD = "good"
    SCRAP = "scrap"


@dataclass(frozen=True, slots=True)
class MachineSpec:
    """What a machine is and its physical limits. ``speed`` is the spindle speed in rpm of a
    CNC machine and the stroke rate in strokes per minute of a press."""

    name: str
    code: str  # short and upper case, part of the serials it makes
    line: str
    kind: MachineKind
    product_type: str
    speed_max: float
    speed_nominal: float
    cycle_s: float  # seconds per part at the nominal speed
    batch_size: int  # parts between two setups
    setup_s: float
    current_idle_a: float
    current_full_a: float  # at speed_max
    temperature_running_c: float  # above ambient at speed_max
    vibration_running_mm_s: float  # at speed_max
    scrap_rate: float  # at the nominal speed on a healthy machine
    speed_tau_s: float
    temperature_tau_s: float
    current_max_a: float
    temperature_max_c: float = 150.0
    vibration_max_mm_s: float = 50.0
    temperature_trip_c: float = 85.0
    vibration_trip_mm_s: float = 11.0

    def __post_init__(self) -> None:
        if not 0 < self.speed_nominal <= self.speed_max:
            raise ValueError(f"{self.name}: need 0 < speed_nominal <= speed_max")


@dataclass(frozen=True, slots=True)
class LineSpec:
    """A production line and the energy meter on its feeder."""

    name: str
    meter_unit: int  # the meter's Modbus unit (device) id
    base_current_a: float  # conveyors, lighting, extraction


LINES: tuple[LineSpec, ...] = (
    LineSpec("cnc-cell", meter_unit=1, base_current_a=6.0),
    LineSpec("press-line", meter_unit=2, base_current_a=9.0),
)

_CNC = MachineSpec(
    name="cnc-1",
    code="CNC1",
    line="cnc-cell",
    kind=MachineKind.CNC,
    product_type="PW-SHAFT-20",
    speed_max=12000.0,
    speed_nominal=8000.0,
    cycle_s=45.0,
    batch_size=60,
    setup_s=600.0,
    current_idle_a=2.5,
    current_full_a=18.0,
    temperature_running_c=30.0,
    vibration_running_mm_s=2.8,
    scrap_rate=0.02,
    speed_tau_s=2.0,
    temperature_tau_s=300.0,
    current_max_a=40.0,
)
_PRESS = MachineSpec(
    name="press-1",
    code="PRS1",
    line="press-line",
    kind=MachineKind.PRESS,
    product_type="PW-BRACKET-3",
    speed_max=60.0,
    speed_nominal=30.0,
    cycle_s=2.0,
    batch_size=500,
    setup_s=900.0,
    current_idle_a=4.0,
    current_full_a=32.0,
    temperature_running_c=25.0,
    vibration_running_mm_s=4.5,
    scrap_rate=0.01,
    speed_tau_s=4.0,
    temperature_tau_s=600.0,
    current_max_a=60.0,
)

MACHINES: tuple[MachineSpec, ...] = (
    _CNC,
    replace(_CNC, name="cnc-2", code="CNC2"),
    _PRESS,
    replace(_PRESS, name="press-2", code="PRS2"),
)

# Mean times, in simulated seconds
_MEAN_TIME_TO_DEGRADATION_S = 4 * 3600.0
_DEGRADATION_S = {FaultKind.BEARING_WEAR: 1200.0, FaultKind.OVERHEAT: 600.0, FaultKind.SENSOR: 0.0}
_FAULT_WEIGHTS = {FaultKind.BEARING_WEAR: 0.5, FaultKind.OVERHEAT: 0.35, FaultKind.SENSOR: 0.15}
_REPAIR_S = 900.0
_MEAN_TIME_TO_STARVED_S = 1800.0  # running until the material runs out
_MEAN_STARVED_S = 120.0


@dataclass(frozen=True, slots=True)
class PartRecord:
    """One finished part: what the traceability step turns into an identifier record."""

    serial: str
    product_type: str
    line: str
    machine: str
    started_at: datetime
    finished_at: datetime
    quality: Quality


@dataclass(frozen=True, slots=True)
class MachineSnapshot:
    """A machine's measured values at one instant."""

    name: str
    line: str
    kind: MachineKind
    state: MachineState
    fault: FaultKind | None  # what tripped it, in FAULT
    speed: float
    speed_setpoint: float
    motor_current_a: float
    temperature_c: float
    vibration_mm_s: float
    vibration_ok: bool  # False while the vibration sensor has failed
    part_count: int
    good_count: int
    scrap_count: int
    last_part: PartRecord | None


@dataclass(frozen=True, slots=True)
class MeterSnapshot:
    """A line's three-phase energy meter."""

    line: str
    unit: int
    voltage_v: float  # line to line
    current_a: float
    power_kw: float
    power_factor: float
    frequency_hz: float
    energy_kwh: float


@dataclass(frozen=True, slots=True)
class PlantSnapshot:
    step: int
    time: datetime
    machines: tuple[MachineSnapshot, ...]
    meters: tuple[MeterSnapshot, ...]

    def machine(self, name: str) -> MachineSnapshot:
        for machine in self.machines:
            if machine.name == name:
                return machine
        raise KeyError(name)

    def meter(self, line: str) -> MeterSnapshot:
        for meter in self.meters:
            if meter.line == line:
                return meter
        raise KeyError(line)


def _lag(value: float, target: float, dt: float, tau: float) -> float:
    return target + (value - target) * math.exp(-dt / tau)


def _clip(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


@dataclass(slots=True)
class _Machine:
    spec: MachineSpec
    rng: random.Random
    setpoint: float
    state: MachineState = MachineState.IDLE
    state_left_s: float = 0.0  # time left in SETUP, FAULT or a starved IDLE
    speed: float = 0.0
    current: float = 0.0
    temperature: float = AMBIENT_C
    vibration: float = 0.0
    wear: float = 0.0  # 0 healthy … 1 trips
    developing: FaultKind | None = None
    fault: FaultKind | None = None
    next_degradation_s: float = 0.0
    next_starved_s: float = 0.0
    progress: float = 0.0  # of the part in work, 0 … 1
    part_started_s: float | None = None
    since_setup: int = 0
    parts: int = 0
    good: int = 0
    scrap: int = 0
    last_part: PartRecord | None = None
    measured: tuple[float, float, float, float] = (0.0, 0.0, AMBIENT_C, 0.0)

    def __post_init__(self) -> None:
        self.next_degradation_s = self.rng.expovariate(1 / _MEAN_TIME_TO_DEGRADATION_S)
        self.next_starved_s = self.rng.expovariate(1 / _MEAN_TIME_TO_STARVED_S)
        self.state_left_s = self.rng.uniform(0.0, 30.0)  # machines start one after the other


@dataclass(slots=True)
class _Meter:
    spec: LineSpec
    rng: random.Random
    voltage: float = NOMINAL_VOLTAGE_V
    frequency: float = NOMINAL_FREQUENCY_HZ
    energy_kwh: float = 0.0
    measured: MeterSnapshot | None = None


@dataclass(slots=True)
class Plant:
    """The whole plant. ``step()`` advances it by ``step_s`` simulated seconds and returns the
    parts finished in that step; ``snapshot()`` gives what the sensors read now."""

    seed: int
    start: datetime = field(default_factory=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    step_s: float = 1.0
    serial_prefix: str | None = None  # default: the start time, so runs do not share serials
    machines: tuple[MachineSpec, ...] = MACHINES
    lines: tuple[LineSpec, ...] = LINES
    steps: int = field(default=0, init=False)
    _machines: dict[str, _Machine] = field(default_factory=dict, init=False)
    _meters: dict[str, _Meter] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError("start needs a time zone")
        if not 0 < self.step_s <= 60:
            raise ValueError("step_s must be in (0, 60]")
        if self.serial_prefix is None:
            self.serial_prefix = self.start.astimezone(UTC).strftime("%y%m%d%H%M%S-")
        for spec in self.machines:
            rng = random.Random(f"{self.seed}/{spec.name}")  # noqa: S311 (a simulation)
            self._machines[spec.name] = _Machine(spec, rng, setpoint=spec.speed_nominal)
        for line in self.lines:
            rng = random.Random(f"{self.seed}/meter/{line.name}")  # noqa: S311
            self._meters[line.name] = _Meter(line, rng)
        self._measure()

    @property
    def elapsed_s(self) -> float:
        return self.steps * self.step_s

    @property
    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.elapsed_s)

    def set_speed_setpoint(self, machine: str, value: float) -> float:
        """Set a machine's speed setpoint (rpm, or strokes/min), clipped to its range; returns
        the value applied. 0 stops the machine after the part in work."""
        state = self._machines[machine]
        if not math.isfinite(value):
            raise ValueError("setpoint must be a finite number")
        state.setpoint = _clip(value, 0.0, state.spec.speed_max)
        return state.setpoint

    def speed_setpoints(self) -> Mapping[str, float]:
        return {name: m.setpoint for name, m in self._machines.items()}

    def inject_fault(self, machine: str, kind: FaultKind) -> None:
        """Start a fault developing on a machine now (a sensor failure trips at once)."""
        state = self._machines[machine]
        if state.state is MachineState.FAULT:
            return
        state.developing = kind
        state.wear = 0.0
        if kind is FaultKind.SENSOR:
            self._trip(state)

    def step(self) -> list[PartRecord]:
        """Advance by one step; the parts finished in it, oldest first."""
        finished: list[PartRecord] = []
        now_s = self.elapsed_s
        self.steps += 1
        for machine in self._machines.values():
            self._advance_machine(machine, now_s, finished)
        for meter in self._meters.values():
            self._advance_meter(meter)
        self._measure()
        return finished

    def run(self, steps: int) -> list[PartRecord]:
        finished: list[PartRecord] = []
        for _ in range(steps):
            finished.extend(self.step())
        return finished

    # -- dynamics --------------------------------------------------------------------------

    def _trip(self, m: _Machine) -> None:
        m.state = MachineState.FAULT
        m.fault = m.developing
        m.developing = None
        m.state_left_s = _REPAIR_S * m.rng.uniform(0.7, 1.5)
        m.progress = 0.0  # the part in work is taken off and not counted
        m.part_started_s = None

    def _advance_machine(self, m: _Machine, now_s: float, finished: list[PartRecord]) -> None:
        spec, dt = m.spec, self.step_s
        end_s = now_s + dt
        # degradation: a fault starts developing at random, and trips when fully developed
        if m.developing is None and m.state is not MachineState.FAULT:
            m.next_degradation_s -= dt
            if m.next_degradation_s <= 0:
                kinds = list(_FAULT_WEIGHTS)
                kind = m.rng.choices(kinds, weights=[_FAULT_WEIGHTS[k] for k in kinds])[0]
                m.next_degradation_s = m.rng.expovariate(1 / _MEAN_TIME_TO_DEGRADATION_S)
                self.inject_fault(spec.name, kind)
        if m.developing is not None and m.state is not MachineState.FAULT:
            duration = _DEGRADATION_S[m.developing]
            m.wear = 1.0 if duration <= 0 else min(1.0, m.wear + dt / duration)
            tripped = m.vibration > spec.vibration_trip_mm_s
            tripped |= m.temperature > spec.temperature_trip_c
            if m.wear >= 1.0 or tripped:  # the machine's protection trips
                self._trip(m)
        # state machine
        if m.state in (MachineState.FAULT, MachineState.SETUP):
            m.state_left_s -= dt
            if m.state_left_s <= 0:
                if m.state is MachineState.FAULT:
                    m.fault, m.wear = None, 0.0
                m.state = MachineState.IDLE
                m.state_left_s = 0.0
        elif m.state is MachineState.IDLE:
            m.state_left_s = max(0.0, m.state_left_s - dt)
            if m.state_left_s <= 0 and m.setpoint > 0:
                m.state = MachineState.RUNNING
        elif m.state is MachineState.RUNNING:
            m.next_starved_s -= dt
            if m.setpoint <= 0:  # stopped: the part in work waits on the machine
                m.state = MachineState.IDLE
            elif m.next_starved_s <= 0:  # no material: likewise
                m.state = MachineState.IDLE
                m.state_left_s = m.rng.expovariate(1 / _MEAN_STARVED_S)
                m.next_starved_s = m.rng.expovariate(1 / _MEAN_TIME_TO_STARVED_S)
        running = m.state is MachineState.RUNNING
        # first-order lags towards state-dependent targets
        target_speed = m.setpoint if running else 0.0
        m.speed = _lag(m.speed, target_speed, dt, spec.speed_tau_s)
        if m.speed < 1e-3 * spec.speed_max and not running:
            m.speed = 0.0
        load = m.speed / spec.speed_max
        m.current = _lag(
            m.current,
            spec.current_idle_a + (spec.current_full_a - spec.current_idle_a) * load,
            dt,
            0.5,
        )
        if m.state is MachineState.FAULT:
            m.current = _lag(m.current, 0.3, dt, 0.5)  # drives off; controls only
        heat = spec.temperature_running_c * load
        if m.developing is FaultKind.OVERHEAT or m.fault is FaultKind.OVERHEAT:
            heat += (spec.temperature_trip_c - AMBIENT_C) * 1.15 * m.wear
            if m.fault is FaultKind.OVERHEAT:  # cools down from the trip point
                heat = 0.0
        tau_t = spec.temperature_tau_s
        if m.developing is FaultKind.OVERHEAT:
            tau_t = 60.0
        m.temperature = _lag(m.temperature, AMBIENT_C + heat, dt, tau_t)
        vibration = spec.vibration_running_mm_s * load + (0.15 if m.speed > 0 else 0.05)
        if m.developing is FaultKind.BEARING_WEAR:
            vibration += spec.vibration_trip_mm_s * 1.1 * m.wear**2 * (load / 0.5 if load else 0)
        m.vibration = _lag(m.vibration, vibration, dt, 3.0)
        # production
        if running and m.speed > 0:
            if m.part_started_s is None:
                m.part_started_s = now_s
            m.progress += dt * m.speed / (spec.speed_nominal * spec.cycle_s)
            while m.progress >= 1.0:
                m.progress -= 1.0
                finished.append(self._finish_part(m, end_s))
                m.part_started_s = end_s
                if m.since_setup >= spec.batch_size:
                    m.since_setup = 0
                    m.state = MachineState.SETUP
                    m.state_left_s = spec.setup_s * m.rng.uniform(0.8, 1.3)
                    m.progress = 0.0
                    m.part_started_s = None
                    break

    def _finish_part(self, m: _Machine, end_s: float) -> PartRecord:
        spec = m.spec
        overspeed = max(0.0, m.speed / spec.speed_nominal - 1.0)
        p_scrap = spec.scrap_rate + 0.15 * overspeed + 0.3 * m.wear
        quality = Quality.SCRAP if m.rng.random() < p_scrap else Quality.GOOD
        m.parts += 1
        m.since_setup += 1
        if quality is Quality.GOOD:
            m.good += 1
        else:
            m.scrap += 1
        started = m.part_started_s if m.part_started_s is not None else end_s
        record = PartRecord(
            serial=f"{self.serial_prefix}{spec.code}-{m.parts:07d}",
            product_type=spec.product_type,
            line=spec.line,
            machine=spec.name,
            started_at=self.start + timedelta(seconds=started),
            finished_at=self.start + timedelta(seconds=end_s),
            quality=quality,
        )
        m.last_part = record
        return record

    def _advance_meter(self, meter: _Meter) -> None:
        rng = meter.rng
        # the grid: slow random walks held near nominal
        meter.voltage += rng.gauss(0.0, 0.3) - 0.01 * (meter.voltage - NOMINAL_VOLTAGE_V)
        meter.voltage = _clip(meter.voltage, 0.95 * NOMINAL_VOLTAGE_V, 1.05 * NOMINAL_VOLTAGE_V)
        meter.frequency += rng.gauss(0.0, 0.002) - 0.05 * (meter.frequency - NOMINAL_FREQUENCY_HZ)
        meter.frequency = _clip(meter.frequency, 49.8, 50.2)
        _, power = self._line_load(meter.spec)
        meter.energy_kwh += power * self.step_s / 3600.0

    def _line_load(self, line: LineSpec) -> tuple[float, float]:
        """The line's true current (A) and active power (kW)."""
        meter = self._meters[line.name]
        current = line.base_current_a + sum(
            m.current for m in self._machines.values() if m.spec.line == line.name
        )
        pf = self._power_factor(line, current)
        return current, math.sqrt(3) * meter.voltage * current * pf / 1000.0

    def _power_factor(self, line: LineSpec, current: float) -> float:
        # motors at light load have a poor power factor
        return _clip(0.6 + 0.3 * (current - line.base_current_a) / 60.0, 0.6, 0.92)

    def _measure(self) -> None:
        """Sample every sensor once (noise included); ``snapshot`` reports these readings."""
        for m in self._machines.values():
            spec, rng = m.spec, m.rng
            speed = m.speed + (rng.gauss(0.0, 0.002 * spec.speed_max) if m.speed > 0 else 0.0)
            m.measured = (
                _clip(speed, 0.0, spec.speed_max),
                _clip(m.current + rng.gauss(0.0, 0.05), 0.0, spec.current_max_a),
                _clip(m.temperature + rng.gauss(0.0, 0.1), -40.0, spec.temperature_max_c),
                _clip(m.vibration + abs(rng.gauss(0.0, 0.05)), 0.0, spec.vibration_max_mm_s),
            )
        for meter in self._meters.values():
            rng = meter.rng
            current, power = self._line_load(meter.spec)
            meter.measured = MeterSnapshot(
                line=meter.spec.name,
                unit=meter.spec.meter_unit,
                voltage_v=meter.voltage + rng.gauss(0.0, 0.2),
                current_a=max(0.0, current + rng.gauss(0.0, 0.05)),
                power_kw=max(0.0, power),
                power_factor=self._power_factor(meter.spec, current),
                frequency_hz=meter.frequency,
                energy_kwh=meter.energy_kwh,
            )

    def snapshot(self) -> PlantSnapshot:
        machines = []
        for m in self._machines.values():
            speed, current, temperature, vibration = m.measured
            machines.append(
                MachineSnapshot(
                    name=m.spec.name,
                    line=m.spec.line,
                    kind=m.spec.kind,
                    state=m.state,
                    fault=m.fault if m.state is MachineState.FAULT else None,
                    speed=speed,
                    speed_setpoint=m.setpoint,
                    motor_current_a=current,
                    temperature_c=temperature,
                    vibration_mm_s=vibration,
                    vibration_ok=not (
                        m.state is MachineState.FAULT and m.fault is FaultKind.SENSOR
                    ),
                    part_count=m.parts,
                    good_count=m.good,
                    scrap_count=m.scrap,
                    last_part=m.last_part,
                )
            )
        meters = tuple(m.measured for m in self._meters.values() if m.measured is not None)
        return PlantSnapshot(self.steps, self.now, tuple(machines), meters)
