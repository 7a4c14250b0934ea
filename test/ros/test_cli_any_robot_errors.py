"""Every mistake a user with their own robot can make ends in one line on stderr and a non-zero exit,
driven through the `rd-vla` command line: robot descriptions, cameras, checkpoints made for another
robot, bags that do not fit the robot, topic maps."""

from __future__ import annotations

from pathlib import Path

import airo_models
import pytest
import yaml

from rd_vla_ros.cli import main
from rd_vla_ros.demos.demo_bag import write_demo_bag
from rd_vla_ros.robot import RobotDescription

pytestmark = pytest.mark.ros

AIRO = Path(airo_models.__file__).parent
UR5E = AIRO / "arms" / "ur5e" / "ur5e.urdf"
ROBOTIQ = AIRO / "grippers" / "robotiq_2f_85" / "urdf" / "robotiq_2f_85.urdf"
ARM = ["shoulder_pan_joint", "shoulder_lift_joint", "elbow_joint", "wrist_1_joint", "wrist_2_joint", "wrist_3_joint"]
TRAIN = ["--steps", "1", "--batch-size", "2", "--warmup-steps", "1", "--threads", "1", "--quiet"]


def write_yaml(path: Path, data: dict) -> str:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("mistakes")
    two_arms = {"name": "ur5e_split", "urdf": [str(UR5E), str(ROBOTIQ)],
                "arms": [{"name": "arm", "joints": ARM}, {"name": "hand", "joints": ["finger_joint"]}]}  # fmt: skip
    robot = write_yaml(root / "robot.yaml", {"robot": two_arms})
    top = {"top": "/cameras/top/image_raw"}
    no_commands_for_the_hand = write_yaml(root / "map.yaml", {"topic_map": {
        "cameras": top, "joint_states": "/joint_states", "instruction": {"default": "pick"},
        "commands": {"kind": "joint_trajectory", "topics": ["/arm/cmd"]}}})  # fmt: skip
    bag = write_demo_bag(root / "split", seconds=0.3, size=32, robot=RobotDescription.load(robot), cameras=top,
                         command_topics=["/arm/cmd", "/hand/cmd"])  # fmt: skip
    aloha_bag = write_demo_bag(root / "aloha", seconds=0.3, size=32)
    (root / "wheel.urdf").write_text(
        '<robot name="w"><link name="a"/><link name="b"/><joint name="spin" type="continuous">'
        '<parent link="a"/><child link="b"/><limit effort="1" velocity="1"/></joint></robot>'
    )
    assert main(["init-checkpoint", str(root / "aloha_ckpt")]) == 0
    assert main(["init-checkpoint", str(root / "ur_ckpt"), "--robot", robot, "--cameras", "top"]) == 0
    return {"root": str(root), "robot": robot, "map": no_commands_for_the_hand, "bag": str(bag),
            "aloha_bag": str(aloha_bag), "wheel": str(root / "wheel.urdf"), "aloha_ckpt": str(root / "aloha_ckpt"),
            "ur_ckpt": str(root / "ur_ckpt")}  # fmt: skip


CASES = {
    "robot file missing": (["init-checkpoint", "{root}/x", "--robot", "{root}/none.yaml"],
                           "robot description '{root}/none.yaml' does not exist"),
    "continuous joint without limits": (["init-checkpoint", "{root}/x", "--robot", "{wheel}", "--no-cameras"],
                                        "continuous in the URDF (no position limits); give robot.limits.spin"),
    "a robot without cameras": (["init-checkpoint", "{root}/x", "--robot", "{robot}"],
                                "no cameras named for robot 'ur5e_split'"),
    "cameras and no cameras": (["init-checkpoint", "{root}/x", "--cameras", "top", "--no-cameras"],
                               "--cameras and --no-cameras contradict each other"),
    "train on a bag of another robot": (["train", "{aloha_bag}", "--out", "{root}/t1", "--robot", "{robot}",
                                         "--cameras", "top", *TRAIN],
                                        "do not match the robot configuration 'ur5e_split': missing ['shoulder_pan"),
    "a joint never commanded": (["train", "{bag}", "--out", "{root}/t2", "--robot", "{robot}", "--topic-map",
                                 "{map}", *TRAIN],
                                "joint(s) ['finger_joint'] of robot 'ur5e_split' are never commanded on ['/arm/cmd']"),
    "resume with another robot": (["train", "{bag}", "--out", "{root}/t3", "--robot", "{robot}", "--topic-map",
                                   "{map}", "--resume", *TRAIN], None),
    "replay with a checkpoint of another robot": (["replay", "{aloha_bag}", "--checkpoint", "{ur_ckpt}", "--out",
                                                   "{root}/r", "--quiet"],
                                                  "checkpoint joints [shoulder_pan_joint, "),
    "export for another robot": (["export", "{aloha_ckpt}", "{root}/onnx", "--robot", "{robot}"],
                                 "checkpoint joints [left_waist, "),
    "sim-eval of a checkpoint for another robot": (["sim-eval", "--checkpoint", "{ur_ckpt}", "--episodes", "1"],
                                                   "!= the simulated robot 'aloha_bimanual' joints [left_waist"),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_one_line_and_a_non_zero_exit(files: dict[str, str], case: str, capsys) -> None:
    argv, expected = CASES[case]
    if case == "resume with another robot":  # a checkpoint of ALOHA where the run resumes
        import shutil

        shutil.copytree(files["aloha_ckpt"], Path(files["root"]) / "t3" / "checkpoint")
        expected = "checkpoint joints [left_waist, "
    capsys.readouterr()
    assert main([a.format(**files) for a in argv]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert expected.format(**files) in err, err
