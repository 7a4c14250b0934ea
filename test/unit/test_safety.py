"""Command clamping against a naive reference and hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from rd_vla_ros.runtime.safety import clamp_chunk, command_reference

LOWER, UPPER, VMAX = np.array([-1.0, 0.0]), np.array([1.0, 1.0]), np.array([1.0, 10.0])


def test_hand_computed_case() -> None:
    chunk = np.array([[0.5, 2.0], [0.6, 0.5], [-5.0, 0.5]])
    safe, report = clamp_chunk(chunk, np.array([0.0, 0.5]), LOWER, UPPER, VMAX, period_s=0.1)
    # joint 0 moves at most 0.1 per row from 0.0; joint 1 is clamped to its upper limit 1.0 first
    np.testing.assert_allclose(safe, [[0.1, 1.0], [0.2, 0.5], [0.1, 0.5]])
    assert report.position_clamps == 2  # 2.0 -> 1.0 and -5.0 -> -1.0
    assert report.velocity_clamps == 3  # joint 0 on every row
    assert report.total == 5


def test_feasible_chunk_is_untouched() -> None:
    chunk = np.array([[0.05, 0.6], [0.1, 0.7]])
    safe, report = clamp_chunk(chunk, np.array([0.0, 0.5]), LOWER, UPPER, VMAX, 0.1)
    np.testing.assert_array_equal(safe, chunk)
    assert report.total == 0


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_is_refused_not_clamped(bad: float) -> None:
    with pytest.raises(ValueError, match="non-finite targets"):
        clamp_chunk(np.array([[bad, 0.5]]), np.zeros(2), LOWER, UPPER, VMAX, 0.1)
    with pytest.raises(ValueError, match="reference joint positions are non-finite"):
        clamp_chunk(np.array([[0.0, 0.5]]), np.array([bad, 0.0]), LOWER, UPPER, VMAX, 0.1)


@settings(max_examples=100, deadline=None)
@given(
    chunk=arrays(np.float64, (6, 2), elements=st.floats(-3, 3)),
    measured=arrays(np.float64, (2,), elements=st.floats(-2, 2)),
)
def test_output_always_within_limits_and_reachable(chunk: np.ndarray, measured: np.ndarray) -> None:
    dt = 0.05
    safe, _ = clamp_chunk(chunk, measured, LOWER, UPPER, VMAX, dt)
    assert (safe >= LOWER - 1e-12).all() and (safe <= UPPER + 1e-12).all()
    steps = np.abs(np.diff(np.vstack([np.clip(measured, LOWER, UPPER), safe]), axis=0))
    assert (steps <= VMAX * dt + 1e-12).all()


def test_the_velocity_reference_is_the_current_command_not_the_measured_position() -> None:
    measured = np.array([0.0, 0.3])  # a gripper held open by the object it squeezes
    previous = np.array([[0.1, 0.0], [0.2, 0.0], [0.3, 0.0]])  # rows reached at +10, +20, +30 ms
    stamp = 1_000_000_000
    # at +20 ms the command is row 1; before the first row, the measured position; after the last, held
    assert command_reference(previous, stamp, 0.01, stamp + 20_000_000, measured).tolist() == [0.2, 0.0]
    assert command_reference(previous, stamp, 0.01, stamp + 5_000_000, measured).tolist() == [0.0, 0.3]
    assert command_reference(previous, stamp, 0.01, stamp + 900_000_000, measured).tolist() == [0.3, 0.0]
    assert command_reference(None, 0, 0.01, stamp, measured).tolist() == [0.0, 0.3]
    # the gripper keeps squeezing (target 0.0) although it measures 0.3: no clamp from the reference
    reference = command_reference(previous, stamp, 0.01, stamp + 30_000_000, measured)
    safe, report = clamp_chunk(np.array([[0.3, 0.0]]), reference, LOWER, UPPER, VMAX, 0.1)
    assert safe.tolist() == [[0.3, 0.0]] and report.total == 0
    _, from_measured = clamp_chunk(np.array([[0.3, 0.0]]), measured, LOWER, UPPER, np.array([1.0, 1.0]), 0.1)
    assert from_measured.velocity_clamps == 2  # what clamping from the measured position would have done


def test_safety_filter_remembers_the_commanded_trajectory_and_holds_inside_the_limits() -> None:
    from rd_vla_ros.runtime.safety import SafetyFilter

    f = SafetyFilter(np.array([-1.0, -1.0]), np.array([1.0, 1.0]), np.array([10.0, 10.0]), velocity_scale=0.5)
    step = 10.0 * 0.5 * 0.02  # 0.1 per row
    measured = np.zeros(2)
    first, report = f.command(np.full((3, 2), 0.9), 0, 0.02, measured)
    np.testing.assert_allclose(first[:, 0], [0.1, 0.2, 0.3])  # walks from the measured position
    assert report.velocity_clamps == 6
    # 40 ms later the arm still measures 0 (it lags), but the reference is what is being commanded: row 1
    second, _ = f.command(np.full((2, 2), 0.9), 40_000_000, 0.02, measured)
    np.testing.assert_allclose(second[:, 0], [0.2 + step, 0.2 + 2 * step])
    f.velocity_reference = "measured"
    third, _ = f.command(np.full((1, 2), 0.9), 80_000_000, 0.02, measured)
    np.testing.assert_allclose(third[0], [step, step])
    target, clamped = f.hold(np.array([5.0, -0.5]))
    assert target.tolist() == [1.0, -0.5] and clamped == 1
    f.velocity_reference = "commanded"
    after_hold, _ = f.command(np.full((1, 2), 0.9), 100_000_000, 0.02, np.array([0.0, 0.0]))
    np.testing.assert_allclose(after_hold[0], [step, step])  # a hold forgets the commanded trajectory
    with pytest.raises(ValueError, match="velocity_reference"):
        SafetyFilter(np.zeros(1), np.ones(1), np.ones(1), velocity_reference="predicted")


def test_a_robot_far_from_its_last_command_starts_from_where_it_is() -> None:
    from rd_vla_ros.runtime.safety import SafetyFilter

    lower, upper, vmax = np.full(2, -3.0), np.full(2, 3.0), np.full(2, 5.0)  # 0.1 rad per 20 ms row
    f = SafetyFilter(lower, upper, vmax, max_tracking_error=0.5)
    f.command(np.full((8, 2), 1.0), 0, 0.02, np.full(2, 1.0))  # commanded: hold at 1.0
    # a lag below the tolerance keeps the commanded reference (a squeezing gripper, a sagging arm)
    rows, report = f.command(np.array([[1.0, 0.4]]), 40_000_000, 0.02, np.array([1.0, 0.6]))
    assert not report.tracking_reset and rows[0].tolist() == [1.0, 0.9]  # 0.1 per row from 1.0
    # the robot was reset to 0 (2 rad away): the next chunk starts there instead of pulling it back
    rows, report = f.command(np.zeros((2, 2)), 80_000_000, 0.02, np.zeros(2))
    assert report.tracking_reset and rows.tolist() == [[0.0, 0.0], [0.0, 0.0]]
    never = SafetyFilter(lower, upper, vmax, max_tracking_error=0.0)  # the stale command stays the reference
    never.command(np.full((8, 2), 1.0), 0, 0.02, np.full(2, 1.0))
    rows, report = never.command(np.zeros((1, 2)), 40_000_000, 0.02, np.zeros(2))
    assert not report.tracking_reset and rows[0].tolist() == [0.9, 0.9]
