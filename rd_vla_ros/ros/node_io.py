"""rd_vla_node's ROS interfaces: the subscriptions that feed its inputs, and `NodeOutputs`, the
publishers the control loop commands through (its sink)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.duration import Duration
from rclpy.lifecycle import LifecycleNode
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory

from rd_vla_ros.msg import ActionChunk
from rd_vla_ros.robot import RobotDescription
from rd_vla_ros.ros.conversions import action_chunk_to_msg, arm_trajectories
from rd_vla_ros.runtime.chunk import ActionChunkData


def subscribe_inputs(
    node: LifecycleNode,
    values: dict[str, Any],
    on_image: Callable[[str, Any], None],
    on_joint_state: Callable[[JointState], None],
    on_instruction: Callable[[String], None],
) -> list[Any]:
    """One subscription per camera (raw or compressed, the configured QoS), the joint states and the
    instruction; returns them for `unsubscribe`."""
    reliability = ReliabilityPolicy.BEST_EFFORT if values["camera_qos"] == "sensor_data" else ReliabilityPolicy.RELIABLE
    camera_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=reliability)
    image_type = Image if values["camera_transport"] == "raw" else CompressedImage
    subscriptions = [
        node.create_subscription(image_type, topic, lambda m, n=name: on_image(n, m), camera_qos)
        for name, topic in zip(values["camera_names"], values["camera_topics"], strict=True)
    ]
    subscriptions.append(node.create_subscription(JointState, values["joint_state_topic"], on_joint_state, 10))
    subscriptions.append(node.create_subscription(String, values["instruction_topic"], on_instruction, 10))
    return subscriptions


class NodeOutputs:
    """The node's publishers, made on configure and destroyed on cleanup: ~/action_chunk, one
    JointTrajectory topic per arm (and per gripper, gripper_mode separate), /diagnostics. As the
    control loop's sink it publishes chunks and commands and writes its log lines."""

    def __init__(self, node: LifecycleNode, values: dict[str, Any], robot: RobotDescription) -> None:
        self.node = node
        self.robot = robot
        self.separate = values["gripper_mode"] == "separate"
        self.chunk_pub = node.create_lifecycle_publisher(ActionChunk, "~/action_chunk", 10)
        self.arm_pubs = [
            node.create_lifecycle_publisher(JointTrajectory, t, 10) for t in values["arm_trajectory_topics"]
        ]
        topics = values["gripper_topics"] if self.separate else []
        self.gripper_pubs = [node.create_lifecycle_publisher(JointTrajectory, t, 10) for t in topics]
        self.diagnostics_pub = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        if len(self.arm_pubs) != len(robot.arms):
            node.get_logger().warning(
                f"{len(self.arm_pubs)} arm_trajectory_topics for {len(robot.arms)} arms: arms without a topic get "
                "no commands"
            )

    def chunk(self, chunk: ActionChunkData) -> None:
        self.chunk_pub.publish(action_chunk_to_msg(chunk))

    def command(self, rows: np.ndarray, stamp_ns: int, period_s: float) -> None:
        for i, (arm_msg, gripper_msg) in enumerate(
            arm_trajectories(self.robot, rows, stamp_ns, period_s, self.separate)
        ):
            if i < len(self.arm_pubs):
                self.arm_pubs[i].publish(arm_msg)
            if gripper_msg is not None and i < len(self.gripper_pubs):
                self.gripper_pubs[i].publish(gripper_msg)

    def log(self, level: str, text: str) -> None:
        logger = self.node.get_logger()  # one call site per severity: rclpy refuses to mix them at one
        if level == "error":
            logger.error(text)
        elif level == "warning":
            logger.warning(text)
        else:
            logger.info(text)

    def wait_for_commands_acked(self, seconds: float) -> None:
        """Until the controllers acknowledged every command sent (reliable subscribers), at most
        `seconds` per topic: a final hold is not lost with the publishers."""
        for pub in [*self.arm_pubs, *self.gripper_pubs]:
            pub.wait_for_all_acked(Duration(seconds=seconds))

    def destroy(self) -> None:
        for pub in [self.chunk_pub, self.diagnostics_pub, *self.arm_pubs, *self.gripper_pubs]:
            self.node.destroy_publisher(pub)
        self.arm_pubs, self.gripper_pubs = [], []
