"""A fake ALOHA robot for multi-process tests: cameras and joint states published at a fixed rate."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import rclpy
import torch
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, JointState

from rd_vla_ros.model.checkpoint import save_policy
from rd_vla_ros.model.config import ALOHA_JOINTS, make_config
from rd_vla_ros.model.policy import RDVLAPolicy
from rd_vla_ros.ros.cdr import image_cdr

CAMERA_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)


def contracting_checkpoint(path: Path, state_gain: float = 0.1) -> Path:
    """A tiny policy whose recurrent core is a contraction, so halting thresholds change k*.

    (An untrained core is not contractive; scaling the adapter's weights on S_{k-1} makes the
    iterates converge at a rate that depends on delta, as a trained head does.)"""
    torch.manual_seed(0)
    policy = RDVLAPolicy(make_config("tiny"))
    d = policy.config.head.d_model
    with torch.no_grad():
        policy.head.core.adapter.weight[:, :d] *= state_gain
    return save_policy(policy, path, extra={"trained": False, "contracting": state_gain})


class FakeRobot:
    """Publishes `cameras` (rgb8, size x size) and /joint_states (+ one extra joint) at `rate_hz`."""

    def __init__(self, context: Context, cameras: list[str], size: int = 224, rate_hz: float = 30.0) -> None:
        self.node = Node("fake_robot", context=context)
        self.cameras_on = True
        self.joints_on = True
        self.size = size
        self.image_pubs = {c: self.node.create_publisher(Image, f"cameras/{c}/image_raw", CAMERA_QOS) for c in cameras}
        self.joint_pub = self.node.create_publisher(JointState, "joint_states", 10)
        rng = np.random.default_rng(0)
        self.frame = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8).tobytes()
        self.positions = np.zeros(len(ALOHA_JOINTS))
        self.node.create_timer(1.0 / rate_hz, self._tick)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def _tick(self) -> None:
        now = self.node.get_clock().now()
        stamp = now.to_msg()
        if self.cameras_on:
            for pub in self.image_pubs.values():  # pre-encoded CDR: rclpy's uint8[] conversion is too slow
                pub.publish(
                    image_cdr(now.nanoseconds, "camera", self.size, self.size, "rgb8", 3 * self.size, self.frame)
                )
        if self.joints_on:
            msg = JointState(name=[*ALOHA_JOINTS, "extra_joint"], position=[*self.positions.tolist(), 9.0])
            msg.header.stamp = stamp
            self.joint_pub.publish(msg)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        time.sleep(0.05)


def wait_for(condition: Callable[[], bool], timeout: float, poll: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(poll)
    return bool(condition())


def init_context() -> Context:
    context = Context()
    rclpy.init(context=context)
    return context
