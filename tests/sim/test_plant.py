"""The plant model: invariants over random runs (hypothesis), determinism, and the behaviour
the demo relies on (faults announce themselves, setpoints are honoured, parts are recorded)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plantwire.sim.plant import (
    MACHINES,
    FaultKind,
    MachineState,
    Plant,
    PlantSnapshot,
    Quality,
)

START = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)
NAMES = [spec.name for spec in MACHINES]

# one action between runs of steps: nothing, a setpoint (as a fraction of the range, beyond
# it included) or an injected fault
actions = st.one_of(
    st.none(),
    st.tuples(st.sampled_from(NAMES), st.floats(-0.5, 1.5)),
    st.tuples(st.sampled_from(NAMES), st.sampled_from(list(FaultKind))),
)
scripts = st.lists(st.tuples(st.integers(1, 400), actions), min_size=1, max_size=12)


def _apply(plant: Plant, action: object) -> None:
    if action is None:
        return
    assert isinstance(action, tuple)
    name, what = action
    if isinstance(what, FaultKind):
        plant.inject_fault(name, what)
    else:
        spec = next(s for s in MACHINES if s.name == name)
        plant.set_speed_setpoint(name, what * spec.speed_max)


def _check_bounds(snapshot: PlantSnapshot) -> None:
    for m in snapshot.machines:
        spec = next(s for s in MACHINES if s.name == m.name)
        assert 0.0 <= m.speed <= spec.speed_max
        assert 0.0 <= m.speed_setpoint <= spec.speed_max
        assert 0.0 <= m.motor_current_a <= spec.current_max_a
        assert -40.0 <= m.temperature_c <= spec.temperature_max_c
        assert 0.0 <= m.vibration_mm_s <= spec.vibration_max_mm_s
        assert m.good_count + m.scrap_count == m.part_count
        assert (m.state is MachineState.FAULT) == (m.fault is not None)
        if m.state is not MachineState.RUNNING:
            assert m.speed <= spec.speed_max  # coasting down, never up
    for meter in snapshot.meters:
        assert 380.0 - 5 <= meter.voltage_v <= 420.0 + 5
        assert 49.8 <= meter.frequency_hz <= 50.2
        assert min(meter.current_a, meter.power_kw, meter.energy_kwh) >= 0
        assert 0.0 < meter.power_factor <= 1.0


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32), script=scripts)
def test_invariants_hold_on_any_run(seed: int, script: list[tuple[int, object]]) -> None:
    plant = Plant(seed=seed, start=START)
    previous = plant.snapshot()
    serials: set[str] = set()
    for steps, action in script:
        _apply(plant, action)
        for _ in range(steps):
            for part in plant.step():
                assert part.serial not in serials
                serials.add(part.serial)
                assert part.started_at <= part.finished_at <= plant.now
                assert part.quality in (Quality.GOOD, Quality.SCRAP)
            snapshot = plant.snapshot()
            _check_bounds(snapshot)
            for before, after in zip(previous.machines, snapshot.machines, strict=True):
                assert after.part_count >= before.part_count
                assert after.good_count >= before.good_count
                assert after.scrap_count >= before.scrap_count
            for before_m, after_m in zip(previous.meters, snapshot.meters, strict=True):
                assert after_m.energy_kwh >= before_m.energy_kwh
            previous = snapshot
    assert sum(m.part_count for m in previous.machines) == len(serials)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32), script=scripts)
def test_same_seed_same_trajectory(seed: int, script: list[tuple[int, object]]) -> None:
    one, two = Plant(seed=seed, start=START), Plant(seed=seed, start=START)
    for steps, action in script:
        _apply(one, action)
        _apply(two, action)
        assert one.run(steps) == two.run(steps)
        assert one.snapshot() == two.snapshot()


def test_different_seeds_differ() -> None:
    one, two = Plant(seed=1, start=START), Plant(seed=2, start=START)
    one.run(600)
    two.run(600)
    assert one.snapshot().machines != two.snapshot().machines


def test_bearing_wear_raises_vibration_before_the_trip() -> None:
    plant = Plant(seed=7, start=START)
    plant.run(120)  # every machine running by now
    assert plant.snapshot().machine("cnc-1").state is MachineState.RUNNING
    plant.inject_fault("cnc-1", FaultKind.BEARING_WEAR)
    healthy = plant.snapshot().machine("cnc-1").vibration_mm_s
    vibration = []
    while (machine := plant.snapshot().machine("cnc-1")).state is not MachineState.FAULT:
        vibration.append(machine.vibration_mm_s)
        plant.step()
        assert plant.elapsed_s < 4000, "never tripped"
    assert machine.fault is FaultKind.BEARING_WEAR
    assert max(vibration[-30:]) > 3 * healthy
    assert plant.snapshot().machine("cnc-1").vibration_ok  # a true reading, not a bad sensor


def test_overheating_trips_and_cools_down() -> None:
    plant = Plant(seed=7, start=START)
    plant.run(120)
    plant.inject_fault("press-1", FaultKind.OVERHEAT)
    steps = 0
    while plant.snapshot().machine("press-1").state is not MachineState.FAULT:
        plant.step()
        steps += 1
        assert steps < 2000, "never tripped"
    tripped = plant.snapshot().machine("press-1")
    assert tripped.fault is FaultKind.OVERHEAT
    assert tripped.temperature_c > 70
    plant.run(300)
    assert plant.snapshot().machine("press-1").temperature_c < tripped.temperature_c - 10


def test_a_failed_sensor_trips_at_once_and_reads_bad_until_repaired() -> None:
    plant = Plant(seed=7, start=START)
    plant.run(120)
    plant.inject_fault("cnc-2", FaultKind.SENSOR)
    machine = plant.snapshot().machine("cnc-2")
    assert machine.state is MachineState.FAULT
    assert not machine.vibration_ok
    plant.run(3 * 3600)
    assert plant.snapshot().machine("cnc-2").vibration_ok


def test_speed_follows_the_setpoint_with_a_lag_and_sets_the_pace() -> None:
    plant = Plant(seed=11, start=START)
    plant.run(120)
    assert plant.set_speed_setpoint("press-2", 50.0) == 50.0
    plant.step()
    after_one = plant.snapshot().machine("press-2").speed
    assert 30.0 < after_one < 50.0  # on its way, not there
    plant.run(60)
    assert plant.snapshot().machine("press-2").speed == pytest.approx(50.0, abs=1.0)
    before = plant.snapshot().machine("press-2").part_count
    plant.run(60)
    assert plant.snapshot().machine("press-2").part_count - before == pytest.approx(50, abs=2)


def test_setpoints_are_clipped_and_zero_stops_the_machine() -> None:
    plant = Plant(seed=11, start=START)
    assert plant.set_speed_setpoint("cnc-1", 99_999.0) == 12_000.0
    assert plant.set_speed_setpoint("cnc-1", -5.0) == 0.0
    with pytest.raises(ValueError, match="finite"):
        plant.set_speed_setpoint("cnc-1", float("nan"))
    plant.run(300)
    machine = plant.snapshot().machine("cnc-1")
    assert machine.state is MachineState.IDLE
    assert machine.speed == 0.0
    assert machine.part_count == 0


def test_parts_carry_their_production_record() -> None:
    plant = Plant(seed=5, start=START, serial_prefix="T-")
    parts = plant.run(2 * 3600)
    assert {p.line for p in parts} == {"cnc-cell", "press-line"}
    cnc = [p for p in parts if p.machine == "cnc-1"]
    assert cnc[0].serial == "T-CNC1-0000001"
    assert all(p.product_type == "PW-SHAFT-20" and p.line == "cnc-cell" for p in cnc)
    durations = sorted((p.finished_at - p.started_at).total_seconds() for p in cnc)
    assert durations[0] >= 44.0  # 45 s a part at the nominal speed; pauses make some longer
    assert durations[len(durations) // 2] == pytest.approx(45.0, abs=1.0)
    assert plant.snapshot().machine("cnc-1").last_part == cnc[-1]
    scrap = sum(p.quality is Quality.SCRAP for p in parts)
    assert 0 < scrap < len(parts) * 0.1


def test_default_serials_name_the_start_so_runs_do_not_collide() -> None:
    plant = Plant(seed=5, start=START)
    assert plant.run(100)[0].serial.startswith("260301060000-")


def test_setups_follow_each_batch() -> None:
    plant = Plant(seed=3, start=START)
    seen = set()
    for _ in range(3 * 3600):
        plant.step()
        machine = plant.snapshot().machine("press-1")
        seen.add(machine.state)
    assert MachineState.SETUP in seen


def test_start_needs_a_time_zone() -> None:
    with pytest.raises(ValueError, match="time zone"):
        Plant(seed=1, start=datetime(2026, 1, 1))
