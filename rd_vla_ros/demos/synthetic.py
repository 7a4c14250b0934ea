"""Synthetic robot sensors for demos, benchmarks and tests: cameras and joint states at a fixed rate.

Publishes `cameras/<name>/image_raw` (rgb8, pre-encoded CDR: see rd_vla_ros.ros.cdr) and
`joint_states` (the robot's joints plus one extra joint, as real robots publish more than the policy
uses) from its own executor thread, stamped with the publish time.
"""

from __future__ import annotations

import threading

import numpy as np
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, JointState

from rd_vla_ros.ros.cdr import image_cdr

CAMERA_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)


class SyntheticSensors:
    def __init__(
        self,
        context: Context,
        cameras: list[str],
        joint_names: list[str],
        size: int = 224,
        rate_hz: float = 30.0,
        seed: int = 0,
    ) -> None:
        self.node = Node("synthetic_sensors", context=context)
        self.cameras_on = True
        self.joints_on = True
        self.size = size
        self.joint_names = list(joint_names)
        self.positions = np.zeros(len(joint_names))
        self.image_pubs = {c: self.node.create_publisher(Image, f"cameras/{c}/image_raw", CAMERA_QOS) for c in cameras}
        self.joint_pub = self.node.create_publisher(JointState, "joint_states", 10)
        self.frame = np.random.default_rng(seed).integers(0, 256, size=(size, size, 3), dtype=np.uint8).tobytes()
        self.published: list[int] = []  # stamps (ns) of camera frames sent
        self.node.create_timer(1.0 / rate_hz, self._tick)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def _tick(self) -> None:
        now = self.node.get_clock().now()
        if self.cameras_on:
            data = image_cdr(now.nanoseconds, "camera", self.size, self.size, "rgb8", 3 * self.size, self.frame)
            for pub in self.image_pubs.values():
                pub.publish(data)
            self.published.append(now.nanoseconds)
        if self.joints_on:
            msg = JointState(name=[*self.joint_names, "extra_joint"], position=[*self.positions.tolist(), 9.0])
            msg.header.stamp = now.to_msg()
            self.joint_pub.publish(msg)

    def close(self) -> None:
        self.executor.shutdown()
        self._thread.join(timeout=10)  # a spin thread alive at interpreter exit aborts the process
        self.node.destroy_node()
