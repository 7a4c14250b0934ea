"""Robot descriptions: ALOHA's YAML, a real third-party URDF (airo-models' UR5e and Robotiq 2F-85),
a URDF alone (file or XML text), YAML overrides, and every mistake as one line naming the fix."""

from __future__ import annotations

from pathlib import Path

import airo_models
import numpy as np
import pytest
import yaml

from rd_vla_ros.paths import config_path
from rd_vla_ros.robot import RobotDescription, RobotDescriptionError

AIRO = Path(airo_models.__file__).parent
UR5E = AIRO / "arms" / "ur5e" / "ur5e.urdf"  # undeclared `drake:` attribute prefix, as shipped
ROBOTIQ = AIRO / "grippers" / "robotiq_2f_85" / "urdf" / "robotiq_2f_85.urdf"  # mimic joints
UR_JOINTS = ["shoulder_pan_joint", "shoulder_lift_joint", "elbow_joint", "wrist_1_joint", "wrist_2_joint",
             "wrist_3_joint"]  # fmt: skip


def write_robot(tmp_path: Path, robot: dict) -> Path:
    path = tmp_path / "robot.yaml"
    path.write_text(yaml.safe_dump({"robot": robot}, sort_keys=False))
    return path


def test_aloha_yaml_is_unchanged() -> None:
    robot = RobotDescription.load("aloha_bimanual.yaml")
    assert robot.num_joints == 14 and robot.joint_names[6] == "left_gripper"
    assert robot.camera_names == ["top"]
    assert [a.controller for a in robot.arms] == ["left_arm_controller/joint_trajectory",
                                                   "right_arm_controller/joint_trajectory"]  # fmt: skip
    same = RobotDescription.from_yaml(config_path("aloha_bimanual.yaml"))
    np.testing.assert_array_equal(robot.upper, same.upper)


def test_a_urdf_alone_is_one_arm_of_its_actuated_joints() -> None:
    arm = RobotDescription.load(str(UR5E))
    assert arm.name == "ur5e" and arm.joint_names == UR_JOINTS
    np.testing.assert_allclose(arm.lower[:3], [-2 * np.pi, -2 * np.pi, -np.pi])
    np.testing.assert_allclose(arm.max_velocity, np.pi)
    gripper = RobotDescription.load(str(ROBOTIQ))
    assert gripper.joint_names == ["finger_joint"]  # its five mimic joints follow it
    assert (gripper.lower[0], gripper.upper[0], gripper.max_velocity[0]) == (0.0, 0.8, 2.0)


def test_urdf_xml_text_as_a_robot_description_parameter() -> None:
    from_text = RobotDescription.load(UR5E.read_text())
    assert from_text.joint_names == UR_JOINTS
    np.testing.assert_array_equal(from_text.upper, RobotDescription.load(str(UR5E)).upper)


def test_yaml_with_two_urdfs_chooses_joints_and_overrides_limits(tmp_path: Path) -> None:
    path = write_robot(tmp_path, {
        "name": "ur5e_robotiq", "urdf": [str(UR5E), str(ROBOTIQ)],
        "arms": [{"name": "arm", "joints": UR_JOINTS[:3], "gripper": "finger_joint",
                  "controller": "/arm/joint_trajectory"}],
        "cameras": {"wrist": "/wrist/image_raw", "scene": "/scene/image_raw"},
        "limits": {"elbow_joint": {"velocity": 1.0}, "finger_joint": {"lower": 0.0, "upper": 1.0, "velocity": 3.0}},
    })  # fmt: skip
    robot = RobotDescription.load(str(path))
    assert robot.joint_names == [*UR_JOINTS[:3], "finger_joint"]
    assert robot.arms[0].controller == "/arm/joint_trajectory" and robot.gripper_names == ["finger_joint"]
    assert robot.camera_names == ["wrist", "scene"]
    np.testing.assert_allclose(robot.max_velocity, [np.pi, np.pi, 1.0, 3.0])
    np.testing.assert_allclose(robot.lower[2], -np.pi)  # the URDF's, where only the velocity is overridden
    assert robot.upper[3] == 1.0


def test_relative_urdf_paths_are_relative_to_the_yaml(tmp_path: Path) -> None:
    (tmp_path / "arm.urdf").write_bytes(UR5E.read_bytes())
    path = write_robot(tmp_path, {"urdf": "arm.urdf"})
    assert RobotDescription.load(str(path)).joint_names == UR_JOINTS


CONTINUOUS = """<robot name="wheel"><link name="a"/><link name="b"/>
<joint name="spin" type="continuous"><parent link="a"/><child link="b"/><limit effort="1" velocity="2"/></joint>
</robot>"""


@pytest.mark.parametrize(
    ("robot", "message"),
    [
        ({"urdf": "missing.urdf"}, "cannot read the URDF"),
        ({"urdf": str(UR5E), "arms": [{"joints": ["elbow_joint", "nope"]}]}, "'nope': it is not a moving joint of"),
        ({"arms": [{"joints": ["a"]}]}, "no lower/upper/velocity limit for joint 'a': there is no URDF"),
        ({"arms": []}, "robot.arms is empty"),
        ({"arms": [{"joints": "a b"}], "limits": {}}, "robot.arms[0].joints must be a non-empty list"),
        ({"urdf": str(UR5E), "cameras": ["top"]}, "robot.cameras must map camera names to image topics"),
        ({"urdf": str(UR5E), "limits": {"elbow_joint": {"lower": 1.0, "upper": 0.0}}}, "needs finite lower < upper"),
        ({"urdf": str(UR5E), "limits": {"elbow_joint": {"vel": 1.0}}}, "robot.limits.elbow_joint must be a mapping"),
        ({"urdf": [str(UR5E), str(UR5E)]}, "is in more than one URDF"),
    ],
)
def test_mistakes_are_one_line_errors(tmp_path: Path, robot: dict, message: str) -> None:
    with pytest.raises(RobotDescriptionError) as err:
        RobotDescription.load(str(write_robot(tmp_path, robot)))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_urdf_mistakes(tmp_path: Path) -> None:
    (tmp_path / "wheel.urdf").write_text(CONTINUOUS)
    with pytest.raises(RobotDescriptionError, match=r"continuous in the URDF.*give robot\.limits\.spin"):
        RobotDescription.load(str(tmp_path / "wheel.urdf"))
    path = write_robot(tmp_path, {"urdf": "wheel.urdf", "limits": {"spin": {"lower": -3.0, "upper": 3.0}}})
    assert RobotDescription.load(str(path)).max_velocity.tolist() == [2.0]
    (tmp_path / "broken.urdf").write_text("<robot name='x'><joint></robot>")
    with pytest.raises(RobotDescriptionError, match="is not valid XML"):
        RobotDescription.load(str(tmp_path / "broken.urdf"))
    with pytest.raises(RobotDescriptionError, match="is not a URDF"):
        RobotDescription.load("<sdf version='1.6'/>")
    with pytest.raises(RobotDescriptionError, match="does not exist"):
        RobotDescription.load(str(tmp_path / "none.yaml"))
    (tmp_path / "bad.yaml").write_text("robot: [")
    with pytest.raises(RobotDescriptionError, match="is not valid YAML"):
        RobotDescription.load(str(tmp_path / "bad.yaml"))
