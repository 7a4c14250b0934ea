"""Ground-truth alignment and metrics of the replay tool, checked against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rd_vla_ros.evaluation.commands import CommandTimeline
from rd_vla_ros.evaluation.metrics import ErrorAccumulator, jerk, pareto_front, recommend, sampled

S = 1_000_000_000


def test_timeline_interpolates_between_points_and_knows_nothing_outside() -> None:
    timeline = CommandTimeline(["a", "b"])
    timeline.add(["b", "a"], [10 * S, 12 * S], np.array([[1.0, 0.0], [3.0, 4.0]]))
    values, valid = timeline.targets(np.array([9 * S, 10 * S, 11 * S, 12 * S, 13 * S]))
    assert valid[:, 0].tolist() == [False, True, True, True, False]
    np.testing.assert_allclose(values[1:4, 0], [0.0, 2.0, 4.0])  # joint a, in robot order
    np.testing.assert_allclose(values[1:4, 1], [1.0, 2.0, 3.0])  # joint b
    assert np.isnan(values[0]).all() and np.isnan(values[4]).all()


def test_a_new_trajectory_replaces_the_old_one_from_its_start() -> None:
    timeline = CommandTimeline(["a"])
    timeline.add(["a"], [1 * S, 2 * S, 3 * S, 4 * S], np.array([[1.0], [2.0], [3.0], [4.0]]))
    timeline.add(["a"], [2 * S + S // 2, 5 * S], np.array([[10.0], [20.0]]))  # replaces 3 s and 4 s
    values, valid = timeline.targets(np.array([2 * S, 3 * S, 5 * S, 6 * S]))
    assert valid.ravel().tolist() == [True, True, True, False]
    # 3 s lies between (2.5 s, 10) and (5 s, 20): 10 + 0.5 / 2.5 * 10 = 12
    np.testing.assert_allclose(values.ravel()[:3], [2.0, 12.0, 20.0])


def test_foreign_and_uncommanded_joints_are_reported() -> None:
    timeline = CommandTimeline(["a", "b"])
    timeline.add(["a", "elbow_of_another_robot"], [S], np.array([[1.0, 2.0]]))
    assert timeline.foreign_joints == {"elbow_of_another_robot"}
    assert timeline.commanded_joints() == ["a"]
    _, valid = timeline.targets(np.array([S]))
    assert valid.tolist() == [[True, False]]


def test_error_accumulator_by_hand() -> None:
    acc = ErrorAccumulator(num_joints=2, chunk_length=3)
    errors = np.array([[1.0, -2.0], [3.0, 0.0], [5.0, 7.0]])  # (H, J)
    valid = np.array([[True, True], [True, False], [True, True]])
    acc.add(errors, valid, rows=2)  # rows 0 and 1 only
    s = acc.summary(["a", "b"])
    assert s["samples"] == 3
    assert s["per_joint_mae"] == {"a": 2.0, "b": 2.0}
    assert s["per_joint_rmse"]["a"] == pytest.approx(math.sqrt((1 + 9) / 2))
    assert s["mae"] == pytest.approx((1 + 2 + 3) / 3)
    assert s["rmse"] == pytest.approx(math.sqrt((1 + 4 + 9) / 3))
    assert s["mae_by_row"][:2] == [1.5, 3.0] and math.isnan(s["mae_by_row"][2])


def test_pareto_front() -> None:
    points = [(1.0, 0.9), (4.0, 0.5), (8.0, 0.5), (16.0, 0.4), (2.0, 1.0), (3.0, math.nan)]
    assert pareto_front(points) == [True, True, False, True, False, False]


def _summary(name: str, mean_k: float, mae: float, fixed: int = 0) -> dict:
    return {"name": name, "halting": "fixed" if fixed else "action_mse", "threshold": None if fixed else 1e-3,
            "fixed_depth": fixed, "iterations": {"mean": mean_k}, "full_chunk": {"mae": mae}}  # fmt: skip


def test_recommendation_is_the_cheapest_adaptive_setting_within_tolerance() -> None:
    summaries = [
        _summary("fixed 32", 32.0, 0.100, fixed=32),
        _summary("delta 1e-4", 20.0, 0.101),
        _summary("delta 1e-3", 12.0, 0.104),
        _summary("delta 1e-2", 5.0, 0.130),
        _summary("fixed 4", 4.0, 0.2, fixed=4),
    ]
    rec = recommend(summaries, tolerance=0.05)
    assert rec["setting"] == "delta 1e-3"
    assert rec["compute_saving_vs_most_iterations"] == pytest.approx(1 - 12 / 32)
    assert recommend(summaries, tolerance=0.0)["setting"] is None  # only fixed 32 reaches the best MAE
    assert recommend([_summary("x", 1.0, math.nan)], 0.05)["setting"] is None


def test_jerk_is_the_mean_absolute_third_difference_over_known_windows() -> None:
    t = np.arange(8, dtype=np.float64)
    positions = np.stack([t**3, 2 * t + 1, -0.25 * t**3], axis=1)  # (T, 3): third differences 6, 0, -1.5
    positions[5, 1] = np.nan  # unknown sample: the windows starting at 2, 3, 4 contain it (joint 1)
    got = jerk(positions, ["a", "b", "gripper"], arm_mask=[True, True, False])
    assert got["per_joint"] == pytest.approx({"a": 6.0, "b": 0.0, "gripper": 1.5})
    assert got["mean"] == pytest.approx((5 * 6.0 + 2 * 0.0) / 7)  # arm joints only: 5 + 2 windows
    assert got["windows"] == 2  # windows where every joint is known
    assert math.isnan(jerk(np.zeros((3, 2)), ["a", "b"])["mean"])  # fewer than four samples


def test_sampled_timeline_is_one_row_per_period() -> None:
    timeline = CommandTimeline(["a"])
    timeline.add(["a"], [0, 40], np.array([[0.0], [4.0]]))
    np.testing.assert_allclose(sampled(timeline, 10).ravel(), [0.0, 1.0, 2.0, 3.0, 4.0])
    assert sampled(CommandTimeline(["a"]), 10).shape == (0, 1)
