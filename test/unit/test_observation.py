"""Observation assembly: freshness, camera sync, missing inputs."""

from __future__ import annotations

import numpy as np
import pytest

from rd_vla_ros.runtime.observation import AssemblyLimits, ObservationAssembler, block_kind

S = 1_000_000_000
IMG = np.zeros((4, 4, 3), np.uint8)


def ready(now: int) -> ObservationAssembler:
    a = ObservationAssembler(["top", "wrist"], AssemblyLimits(0.2, 0.1, 0.05), default_instruction="pick")
    a.cameras["top"].update(IMG, now - S // 100, now)
    a.cameras["wrist"].update(IMG, now - S // 50, now)
    a.joints.update(np.arange(3.0), now - S // 200, now)
    return a


def test_assembles_when_everything_is_fresh_and_in_sync() -> None:
    now = 100 * S
    obs, reason = ready(now).assemble(now)
    assert reason == "" and obs is not None
    assert list(obs.images) == ["top", "wrist"]
    assert obs.stamp_ns == now - S // 200  # newest input stamp
    assert obs.instruction == "pick"


@pytest.mark.parametrize(
    ("break_it", "reason"),
    [
        (lambda a, now: a.cameras["wrist"].update(IMG, now - S // 2, now), "stale camera"),
        (lambda a, now: a.joints.update(np.zeros(3), now - S // 5, now), "stale joint state"),
        (lambda a, now: a.cameras["top"].update(IMG, now - S // 10, now), "out of sync by 0.080"),
        (lambda a, now: setattr(a.instruction, "value", None), "no instruction"),
    ],
)
def test_blocks_with_a_reason(break_it, reason: str) -> None:
    now = 100 * S
    a = ready(now)
    break_it(a, now)
    obs, why = a.assemble(now)
    assert obs is None and reason in why


def test_missing_inputs() -> None:
    a = ObservationAssembler(["top"], default_instruction="x")
    assert "no image yet from camera(s) ['top']" in a.assemble(0)[1]
    a.cameras["top"].update(IMG, 0, 0)
    assert a.assemble(0)[1] == "no joint state yet"


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match=r"AssemblyLimits\.sync_tolerance_s must be > 0"):
        AssemblyLimits(sync_tolerance_s=0)


def test_a_state_only_observation_needs_joints_and_an_instruction() -> None:
    now = 100 * S
    a = ObservationAssembler([], AssemblyLimits(0.2, 0.1, 0.05), default_instruction="pick")
    assert a.assemble(now) == (None, "no joint state yet")
    a.joints.update(np.arange(3.0), now - S // 200, now)
    obs, reason = a.assemble(now)
    assert reason == "" and obs is not None and obs.images == {}
    assert obs.stamp_ns == now - S // 200 and obs.input_stamps == {"joint_states": now - S // 200}
    assert a.assemble(now + S)[1].startswith("stale joint state")


def test_block_kinds_are_stable_counter_keys() -> None:
    now = 100 * S
    a = ready(now)
    a.cameras["wrist"].update(IMG, now - S, now)
    assert block_kind(a.assemble(now)[1]) == "stale camera"  # no camera names or ages in the key
    assert block_kind(ObservationAssembler(["top"], default_instruction="x").assemble(0)[1]) == "no image yet"
    assert block_kind("something new") == "other"


def test_inputs_replaced_before_use_are_counted_as_dropped() -> None:
    now = 100 * S
    a = ready(now)
    assert a.cameras["top"].dropped == 0
    a.cameras["top"].update(IMG, now, now)  # the first top frame was never used: dropped
    a.cameras["top"].update(IMG, now, now)  # and this one
    assert a.cameras["top"].dropped == 2 and a.cameras["wrist"].dropped == 0
    obs, _ = a.assemble(now)
    assert obs is not None
    a.cameras["top"].update(IMG, now, now)  # the previous one went into an observation: not dropped
    a.joints.update(np.arange(3.0), now, now)
    assert a.cameras["top"].dropped == 2 and a.joints.dropped == 0
    blocked = ready(now)
    blocked.instruction.value = None
    assert blocked.assemble(now)[0] is None
    blocked.joints.update(np.arange(3.0), now, now)  # a blocked assembly used nothing
    assert blocked.joints.dropped == 1
