"""Bring your own robot, end to end as docs/robots.md does it: a UR5e arm with a Robotiq 2F-85 gripper
(the URDFs airo-models ships) and one wrist camera, recorded by a driver that names its joints q0..q6:
bags -> rd-vla train -> rd-vla replay -> rd_vla_node configured and active, producing a chunk. Then a
state-only policy (no camera; a driver that publishes empty name arrays) through the same path."""

from __future__ import annotations

from pathlib import Path

import airo_models
import pytest
import yaml
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from rd_vla_ros.msg import ActionChunk
from ros_helpers import spin_until

from rd_vla_ros.cli import main
from rd_vla_ros.demos.demo_bag import write_demo_bag
from rd_vla_ros.demos.synthetic import SyntheticSensors
from rd_vla_ros.model.checkpoint import read_config
from rd_vla_ros.paths import config_path
from rd_vla_ros.robot import RobotDescription
from rd_vla_ros.ros.node import RDVLANode

pytestmark = pytest.mark.ros

AIRO = Path(airo_models.__file__).parent
UR5E = AIRO / "arms" / "ur5e" / "ur5e.urdf"
ARM = ["shoulder_pan_joint", "shoulder_lift_joint", "elbow_joint", "wrist_1_joint", "wrist_2_joint", "wrist_3_joint"]
JOINTS = [*ARM, "finger_joint"]
COMMANDS = "/arm_controller/joint_trajectory"
CAMERA = "/wrist_camera/image_raw"
TRAIN = ["--steps", "2", "--batch-size", "2", "--warmup-steps", "1", "--log-every", "1", "--save-every", "2",
         "--threads", "1", "--quiet"]  # fmt: skip


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The shipped example robot (config/ur5e_robotiq.yaml, URDFs by package://), recorded by a driver that
    names its joints q0..q6 (renamed by the topic map), and a state-only recording whose driver publishes
    empty name arrays (named by position)."""
    root = tmp_path_factory.mktemp("ur5e")
    robot = RobotDescription.load("ur5e_robotiq.yaml")
    assert robot.joint_names == JOINTS and robot.camera_names == ["wrist"] and robot.max_velocity[0] == 1.0
    recorded = [f"q{i}" for i in range(len(JOINTS))]
    topic_map = write_yaml(root / "topic_map.yaml", {"topic_map": {
        "cameras": {"wrist": CAMERA},
        "joint_states": {"topic": "/joint_states", "rename": dict(zip(recorded, JOINTS, strict=True))},
        "instruction": {"topic": "/instruction", "default": "pick up the block"},
        "commands": {"kind": "joint_trajectory", "topics": [COMMANDS]},
    }})  # fmt: skip
    state_map = write_yaml(root / "topic_map_state.yaml", {"topic_map": {
        "joint_states": {"topic": "/joint_states", "names": JOINTS},
        "instruction": {"topic": "/instruction", "default": "pick up the block"},
        "commands": {"kind": "joint_trajectory", "topics": [COMMANDS]},
    }})  # fmt: skip
    common = {"robot": robot, "seconds": 0.6, "command_topics": [COMMANDS], "instruction": "pick up the block"}
    bag = write_demo_bag(root / "ep0", size=32, cameras={"wrist": CAMERA}, state_names=recorded, **common)
    state_bag = write_demo_bag(root / "state0", storage="sqlite3", cameras={}, state_names=[], **common)
    return {"root": root, "robot": config_path("ur5e_robotiq.yaml"), "topic_map": topic_map, "state_map": state_map,
            "bag": bag, "state_bag": state_bag}  # fmt: skip


def run_node(ros_context, params: Path, *args: str) -> ActionChunk:
    """The node started as a user starts it (a params file, command-line overrides), fed by synthetic
    sensors on cameras/<name>/image_raw and joint_states: its first chunk."""
    node = RDVLANode(context=ros_context, cli_args=["--ros-args", "--params-file", str(params), *args])
    sensors = SyntheticSensors(ros_context, node.values["camera_names"], JOINTS, size=32)
    chunks: list[ActionChunk] = []
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        node.create_subscription(ActionChunk, "/rd_vla_node/action_chunk", chunks.append, 10)
        assert spin_until([node], ros_context, lambda: bool(chunks), timeout=30), node.stats
        node.trigger_deactivate()
    finally:
        sensors.close()
        node.destroy_node()
    return chunks[0]


FAST = ["-p", "warmup_runs:=1", "-p", "halting.fixed_depth:=2", "-p", "horizon.schedule:=fixed"]


def test_the_docs_recording_fits_the_shipped_topic_map(tmp_path: Path, capsys) -> None:
    bag = tmp_path / "ep0"
    assert main(["demo-bag", str(bag), "--robot", "ur5e_robotiq.yaml", "--seconds", "0.2"]) == 0
    assert main(["bag-info", str(bag), "--topic-map", str(config_path("topic_map_ur5e_robotiq.yaml"))]) == 0
    assert "the bag has every topic the topic map needs" in capsys.readouterr().out


def test_a_ur5e_with_a_gripper_and_a_wrist_camera(setup: dict[str, Path], ros_context, capsys) -> None:
    root = setup["root"]
    assert main(["init-checkpoint", str(root / "init"), "--robot", str(setup["robot"])]) == 0
    config, _ = read_config(root / "init")
    assert config.joint_names == JOINTS and config.camera_names == ["wrist"]
    run = root / "run"
    assert main(["train", str(setup["bag"]), "--out", str(run), "--robot", str(setup["robot"]), "--topic-map",
                 str(setup["topic_map"]), *TRAIN]) == 0  # fmt: skip
    config, extra = read_config(run / "checkpoint")
    assert (config.joint_names, config.camera_names, extra["robot"]) == (JOINTS, ["wrist"], "ur5e_robotiq")
    assert main(["replay", str(setup["bag"]), "--checkpoint", str(run / "checkpoint"), "--robot", str(setup["robot"]),
                 "--topic-map", str(setup["topic_map"]), "--out", str(root / "replay"), "--fixed-depths", "2",
                 "--thresholds", "1e-2", "--quiet", "--no-plots"]) == 0  # fmt: skip
    assert (root / "replay" / "report.md").is_file()
    # a checkpoint for other joints is refused before it loads: both lists, one line
    capsys.readouterr()
    assert main(["replay", str(setup["bag"]), "--checkpoint", str(run / "checkpoint"), "--robot", str(UR5E),
                 "--topic-map", str(setup["topic_map"]), "--out", str(root / "r2"), "--quiet"]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"checkpoint joints [{', '.join(JOINTS)}] != robot 'ur5e' joints [" in err
    # the shipped parameters of docs/robots.md; the synthetic camera publishes under another name: remapped
    remap = f"{CAMERA}:=/cameras/wrist/image_raw"
    params = config_path("rd_vla_node_ur5e_robotiq.yaml")
    chunk = run_node(ros_context, params, "-p", f"checkpoint:={run / 'checkpoint'}", "-r", remap, *FAST)
    assert list(chunk.joint_names) == JOINTS


def test_a_state_only_policy(setup: dict[str, Path], ros_context) -> None:
    root = setup["root"]
    run = root / "state_run"
    assert main(["train", str(setup["state_bag"]), "--out", str(run), "--robot", str(setup["robot"]), "--no-cameras",
                 "--topic-map", str(setup["state_map"]), *TRAIN]) == 0  # fmt: skip
    config, _ = read_config(run / "checkpoint")
    assert config.camera_names == [] and config.backbone.num_cameras == 0
    assert main(["replay", str(setup["state_bag"]), "--checkpoint", str(run / "checkpoint"), "--robot",
                 str(setup["robot"]), "--topic-map", str(setup["state_map"]), "--out", str(root / "state_replay"),
                 "--fixed-depths", "2", "--thresholds", "1e-2", "--quiet", "--no-plots"]) == 0  # fmt: skip
    # camera_names: [] in the params file (rclpy leaves an empty list unset: the node reads it as [])
    params = write_yaml(root / "state_node.yaml", {"rd_vla_node": {"ros__parameters": {
        "checkpoint": str(run / "checkpoint"), "robot_description": "ur5e_robotiq.yaml", "camera_names": [],
        "camera_topics": [], "arm_trajectory_topics": [COMMANDS], "instruction": "pick up the block"}}})  # fmt: skip
    chunk = run_node(ros_context, params, *FAST)
    assert list(chunk.joint_names) == JOINTS and list(chunk.input_names) == ["joint_states"]


def test_the_node_takes_the_urdf_itself_as_robot_description(setup: dict[str, Path], ros_context) -> None:
    """robot_description may be the URDF XML (as robot_state_publisher's parameter holds it): one arm of
    its actuated joints; a checkpoint made for other joints is refused at configure."""
    root = setup["root"]
    assert main(["init-checkpoint", str(root / "arm_only"), "--robot", str(UR5E), "--cameras", "wrist"]) == 0
    for checkpoint, expected in ((root / "arm_only", TransitionCallbackReturn.SUCCESS),
                                 (root / "init", TransitionCallbackReturn.FAILURE)):  # fmt: skip
        node = RDVLANode(context=ros_context, parameter_overrides=[
            Parameter("checkpoint", value=str(checkpoint)), Parameter("robot_description", value=UR5E.read_text()),
            Parameter("camera_names", value=["wrist"]), Parameter("camera_topics", value=["cameras/wrist/image_raw"]),
            Parameter("arm_trajectory_topics", value=["arm_controller/joint_trajectory"])])  # fmt: skip
        try:
            assert node.trigger_configure() == expected
            if expected == TransitionCallbackReturn.SUCCESS:
                assert node.robot is not None and node.robot.joint_names == ARM
        finally:
            node.destroy_node()


def test_replay_and_train_read_joints_as_the_params_file_names_them(setup: dict[str, Path], capsys) -> None:
    """The node's joint_states.rename (a params file) applies to the bags that replay and train read, as
    it does live: a topic map without renames then fits the q0..q6 recording; a topic map that renames
    otherwise is refused in one line that names both."""
    root = setup["root"] / "params_rename"
    root.mkdir()
    recorded = [f"q{i}" for i in range(len(JOINTS))]
    plain = yaml.safe_load(setup["topic_map"].read_text())
    plain["topic_map"]["joint_states"] = "/joint_states"
    plain_map = write_yaml(root / "plain.yaml", plain)
    params = write_yaml(root / "node.yaml", {"rd_vla_node": {"ros__parameters": {
        "robot_description": "ur5e_robotiq.yaml", "camera_names": ["wrist"], "camera_topics": [CAMERA],
        "arm_trajectory_topics": [COMMANDS],
        "joint_states.rename": [f"{q}={j}" for q, j in zip(recorded, JOINTS, strict=True)]}}})  # fmt: skip
    assert main(["init-checkpoint", str(root / "init"), "--robot", str(setup["robot"])]) == 0

    def replay(topic_map: Path, *args: str) -> int:
        return main(["replay", str(setup["bag"]), "--checkpoint", str(root / "init"), "--topic-map", str(topic_map),
                     "--fixed-depths", "2", "--thresholds", "1e-2", "--quiet", "--no-plots", *args])  # fmt: skip

    capsys.readouterr()
    assert replay(plain_map, "--robot", str(setup["robot"]), "--out", str(root / "without")) == 1  # q0..q6 unknown
    assert capsys.readouterr().err.count("\n") == 1
    assert replay(plain_map, "--params", str(params), "--out", str(root / "with")) == 0
    assert (root / "with" / "report.md").is_file()
    assert main(["train", str(setup["bag"]), "--out", str(root / "run"), "--params", str(params), "--topic-map",
                 str(plain_map), *TRAIN]) == 0  # fmt: skip
    other = yaml.safe_load(setup["topic_map"].read_text())
    other["topic_map"]["joint_states"]["rename"] = {"q0": JOINTS[1], "q1": JOINTS[0]}
    capsys.readouterr()
    other_map = write_yaml(root / "other.yaml", other)
    assert replay(other_map, "--params", str(params), "--out", str(root / "conflict")) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "joint_states.rename" in err and "keep one of them" in err
