"""ActionChunkData validation and the robot description (pure Python, no ROS)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rd_vla_ros.paths import config_path
from rd_vla_ros.robot import RobotDescription
from rd_vla_ros.runtime.chunk import ActionChunkData


def _chunk(**overrides: object) -> ActionChunkData:
    fields: dict[str, object] = {
        "positions": np.zeros((8, 2)),
        "joint_names": ["a", "b"],
        "execution_horizon": 4,
        "control_period_s": 0.02,
        "iterations": 3,
        "max_iterations": 32,
        "residual_trace": [math.nan, 0.1, 0.0005],
    }
    fields.update(overrides)
    return ActionChunkData(**fields)  # type: ignore[arg-type]


def test_valid_chunk_properties() -> None:
    chunk = _chunk()
    assert (chunk.chunk_length, chunk.num_joints) == (8, 2)
    assert chunk.is_finite()
    chunk.positions[3, 1] = np.inf
    assert not chunk.is_finite()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"positions": np.zeros(8)}, "must be \\(H, J\\)"),
        ({"positions": np.zeros((0, 2))}, "at least one row"),
        ({"joint_names": ["a"]}, "2 columns but joint_names has 1"),
        ({"execution_horizon": 0}, "execution_horizon must be in \\[1, 8\\]"),
        ({"execution_horizon": 9}, "execution_horizon must be in \\[1, 8\\]"),
        ({"control_period_s": 0.0}, "control_period_s"),
        ({"control_period_s": math.nan}, "control_period_s"),
        ({"iterations": 33}, "iterations must be in \\[1, 32\\]"),
        ({"min_iterations": 40}, "min_iterations <= max_iterations"),
        ({"residual_trace": [math.nan]}, "residual_trace has 1 entries but iterations is 3"),
    ],
)
def test_invalid_chunk_names_the_problem(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _chunk(**overrides)


def test_aloha_description_matches_the_14d_action_layout() -> None:
    robot = RobotDescription.from_yaml(config_path("aloha_bimanual.yaml"))
    assert robot.num_joints == 14
    assert robot.joint_names[:7] == [
        "left_waist", "left_shoulder", "left_elbow", "left_forearm_roll",
        "left_wrist_angle", "left_wrist_rotate", "left_gripper",
    ]  # fmt: skip
    assert robot.joint_names[7] == "right_waist"
    assert robot.gripper_names == ["left_gripper", "right_gripper"]
    assert (robot.lower < robot.upper).all()
    assert robot.lower[robot.joint_names.index("right_shoulder")] == pytest.approx(-1.85005)
    assert robot.upper[robot.joint_names.index("left_gripper")] == 1.0


def test_robot_description_errors_name_the_joint() -> None:
    base = {"arms": [{"name": "left", "joints": ["left_a"], "gripper": None}], "limits": {}}
    with pytest.raises(ValueError, match="no lower/upper/velocity limit for joint 'left_a'"):
        RobotDescription.from_dict(base)
    base["limits"] = {"a": {"lower": 1.0, "upper": 0.0, "velocity": 1.0}}
    with pytest.raises(ValueError, match="joint 'left_a' needs finite lower < upper"):
        RobotDescription.from_dict(base)
    with pytest.raises(ValueError, match=r"robot\.arms is empty"):
        RobotDescription.from_dict({"arms": []})
    dup = {
        "arms": [{"name": "l", "joints": ["x", "x"]}],
        "limits": {"x": {"lower": 0, "upper": 1, "velocity": 1}},
    }
    with pytest.raises(ValueError, match="duplicate joint names"):
        RobotDescription.from_dict(dup)
