"""A small ALOHA-style recording with known content, for the replay demo and the tests.

Topics and types are those a real bimanual robot records (config/topic_map_aloha.yaml):
    /cameras/top/image_raw, /cameras/left_wrist/image_raw   sensor_msgs/Image rgb8 (a moving square)
    /joint_states                                           sensor_msgs/JointState (+ one extra joint)
    /instruction                                            std_msgs/String, once at the start
    /left_arm_controller/joint_trajectory, /right_...       trajectory_msgs/JointTrajectory commands

The commanded motion is `demo_command(robot, t)`: every joint follows its own sinusoid inside its
limits. Each command is one point reached one control period after its stamp; the measured joint
state follows the command with one period of lag, as a position-controlled follower arm does.
Header stamps equal the bag's receive times.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rclpy.serialization import serialize_message
from sensor_msgs.msg import JointState
from std_msgs.msg import String

from rd_vla_ros.paths import config_path
from rd_vla_ros.robot import RobotDescription
from rd_vla_ros.ros.bags import BagWriter
from rd_vla_ros.ros.cdr import image_cdr
from rd_vla_ros.ros.conversions import action_chunk_to_msg, joint_trajectory, ns_to_time
from rd_vla_ros.runtime.chunk import ActionChunkData

START_NS = 1_700_000_000_000_000_000  # an epoch-like start, as real recordings have
CAMERAS = {"top": "/cameras/top/image_raw", "left_wrist": "/cameras/left_wrist/image_raw"}
COMMAND_TOPICS = ["/left_arm_controller/joint_trajectory", "/right_arm_controller/joint_trajectory"]


def demo_command(robot: RobotDescription, t_s: np.ndarray | float) -> np.ndarray:
    """Commanded positions (..., J) at t_s seconds after the start of the recording."""
    t = np.asarray(t_s, dtype=np.float64)[..., None]  # (..., 1)
    j = np.arange(robot.num_joints)  # (J,)
    mid, half = (robot.lower + robot.upper) / 2, (robot.upper - robot.lower) / 2
    freq = 0.2 + 0.05 * j  # Hz: slow enough for every velocity limit
    return mid + 0.3 * half * np.sin(2 * np.pi * freq * t + 0.4 * j)


def frame(t_s: float, size: int, camera: int) -> bytes:
    """(size, size, 3) rgb8: a bright square moving over a dark background."""
    img = np.full((size, size, 3), 30, dtype=np.uint8)
    side = size // 4
    x = int((0.5 + 0.4 * np.sin(2 * np.pi * 0.5 * t_s + camera)) * (size - side))
    y = int((0.5 + 0.4 * np.cos(2 * np.pi * 0.3 * t_s)) * (size - side))
    img[y : y + side, x : x + side] = (220, 120 + 40 * camera, 40)
    return img.tobytes()


def write_demo_bag(
    path: str | Path,
    seconds: float = 4.0,
    storage: str = "mcap",
    robot: RobotDescription | None = None,
    size: int = 64,
    camera_hz: float = 25.0,
    period_s: float = 0.02,
    instruction: str = "transfer the cube",
    command_kind: str = "joint_trajectory",
    cameras: dict[str, str] | None = None,
    command_topics: list[str] | None = None,
    state_names: list[str] | None = None,
) -> Path:
    """Write the recording; returns its path (which must not exist yet).

    command_kind: how the commands are recorded (the topic map's commands.kind): "joint_trajectory"
    (one JointTrajectory per arm on `command_topics`, default COMMAND_TOPICS), "joint_state"
    (sensor_msgs/JointState stamped with the time it targets, on /joint_commands) or "action_chunk"
    (one-row ActionChunks on /policy/action_chunk). cameras: name -> image topic (default CAMERAS;
    {} records none). state_names: the names /joint_states publishes for the robot's joints, in
    robot order (default: the robot's, plus one extra joint; []: an empty `name` array, as some
    drivers publish)."""
    robot = robot or RobotDescription.from_yaml(config_path("aloha_bimanual.yaml"))
    cameras = CAMERAS if cameras is None else cameras
    command_topics = command_topics or COMMAND_TOPICS
    period_ns = round(period_s * 1e9)
    camera_every = max(1, round(1.0 / (camera_hz * period_s)))
    names = robot.joint_names
    if state_names is not None and state_names and len(state_names) != len(names):
        raise ValueError(f"state_names needs one name per robot joint ({len(names)}), got {state_names}")
    with BagWriter(path, storage) as bag:
        bag.write("/instruction", "std_msgs/msg/String", START_NS, serialize_message(String(data=instruction)))
        for step in range(round(seconds / period_s)):
            t_ns = START_NS + step * period_ns
            t_s = step * period_s
            if step % camera_every == 0:
                for i, topic in enumerate(cameras.values()):
                    data = image_cdr(t_ns, topic.split("/")[2], size, size, "rgb8", 3 * size, frame(t_s, size, i))
                    bag.write(topic, "sensor_msgs/msg/Image", t_ns, data)
            measured = demo_command(robot, t_s - period_s)  # (J,) the follower lags one period
            if state_names is None:
                state = JointState(name=[*names, "extra_joint"], position=[*measured.tolist(), 0.0])
            else:
                state = JointState(name=list(state_names), position=measured.tolist())
            state.header.stamp = ns_to_time(t_ns)
            bag.write("/joint_states", "sensor_msgs/msg/JointState", t_ns, serialize_message(state))
            target = demo_command(robot, t_s + period_s)  # (J,) reached one period from now
            if command_kind == "joint_state":
                command = JointState(name=names, position=target.tolist())
                command.header.stamp = ns_to_time(t_ns + period_ns)
                bag.write("/joint_commands", "sensor_msgs/msg/JointState", t_ns, serialize_message(command))
            elif command_kind == "action_chunk":
                chunk = ActionChunkData(target[None, :], names, 1, period_s, stamp_ns=t_ns, sequence=step)
                data = serialize_message(action_chunk_to_msg(chunk))
                bag.write("/policy/action_chunk", "rd_vla_ros/msg/ActionChunk", t_ns, data)
            else:
                for arm, topic in zip(robot.arms, command_topics, strict=True):
                    cols = [names.index(n) for n in arm.joint_names]
                    msg = joint_trajectory(list(arm.joint_names), target[None, cols], t_ns, period_s)
                    bag.write(topic, "trajectory_msgs/msg/JointTrajectory", t_ns, serialize_message(msg))
    return Path(path)


def write_robot_demo_bag(
    path: str | Path, robot_file: str, seconds: float = 4.0, storage: str = "mcap", instruction: str = ""
) -> Path:
    """The demo recording of a described robot (`rd-vla demo-bag --robot`): its joints, its cameras'
    topics, and one JointTrajectory per arm on the arm's controller topic; ValueError (one line) when
    the robot file names no controller for an arm."""
    robot = RobotDescription.load(robot_file)
    missing = [arm.name for arm in robot.arms if not arm.controller]
    if missing:
        raise ValueError(
            f"{robot_file}: arm(s) {missing} name no controller topic (robot.arms[].controller): demo-bag records "
            "each arm's commands there"
        )
    cameras = {name: "/" + topic.lstrip("/") for name, topic in robot.cameras.items()}
    command_topics = ["/" + arm.controller.lstrip("/") for arm in robot.arms]
    return write_demo_bag(path, seconds, storage, robot, instruction=instruction, cameras=cameras,
                          command_topics=command_topics)  # fmt: skip
