"""Run in a separate process: republish every ActionChunk from `relay_in` on `relay_out` unchanged."""

from __future__ import annotations

import os
import sys
import time

import rclpy
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from rd_vla_ros.msg import ActionChunk


def main() -> None:
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
    # A reliable writer resends what a late-matching reader missed only while it exists.
    pub.wait_for_all_acked(Duration(seconds=timeout))
    sys.stdout.write(f"relayed {relayed}\n")
    sys.stdout.flush()
    # The work is done and reported: end here. Once, after "relayed 5", the teardown (destroy_node,
    # try_shutdown, the interpreter's exit) spun a core for over 30 minutes with the FastDDS threads
    # still alive: a helper of the test must not outlive it.
    os._exit(0 if relayed == count else 1)


if __name__ == "__main__":
    main()
