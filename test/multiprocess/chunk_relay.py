"""Run in a separate process: republish every ActionChunk from `relay_in` on `relay_out` unchanged."""

from __future__ import annotations

import sys
import time

import rclpy
from rclpy.node import Node
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from rd_vla_ros.msg import ActionChunk


def main() -> int:
    count, timeout = int(sys.argv[1]), float(sys.argv[2])
    rclpy.init()
    node = Node("chunk_relay")
    qos = QoSProfile(depth=50, reliability=QoSReliabilityPolicy.RELIABLE)
    pub = node.create_publisher(ActionChunk, "relay_out", qos)
    relayed = 0

    def on_chunk(msg: ActionChunk) -> None:
        nonlocal relayed
        pub.publish(msg)
        relayed += 1

    node.create_subscription(ActionChunk, "relay_in", on_chunk, qos)
    deadline = time.monotonic() + timeout
    while relayed < count and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    # Keep the publisher alive a moment so the last reliable sample is delivered.
    end = time.monotonic() + 0.5
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    sys.stdout.write(f"relayed {relayed}\n")
    node.destroy_node()
    rclpy.try_shutdown()
    return 0 if relayed == count else 1


if __name__ == "__main__":
    sys.exit(main())
