"""ActionChunk loopback across processes: a talker publishes chunks, an echo prints what arrives.

The talker plans a smooth bimanual reaching motion for the robot in the given description (each joint
eases from its current target towards a new random target inside its limits, sampled at the control
period) and publishes it chunk by chunk as `rd_vla_ros/msg/ActionChunk`. The echo subscribes, checks
every chunk against the robot description (names, limits, sizes) and reports transport latency.

    rd_vla_chunk_echo --count 20 &
    rd_vla_chunk_talker --count 20
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import rclpy
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy

from rd_vla_ros.msg import ActionChunk
from rd_vla_ros.paths import config_path
from rd_vla_ros.robot import RobotDescription
from rd_vla_ros.ros.conversions import action_chunk_from_msg, action_chunk_to_msg
from rd_vla_ros.runtime.chunk import ActionChunkData

TOPIC = "rd_vla/action_chunk"
QOS = QoSProfile(depth=50, reliability=QoSReliabilityPolicy.RELIABLE, durability=QoSDurabilityPolicy.VOLATILE)


def plan_chunks(robot: RobotDescription, count: int, chunk_length: int, period_s: float, seed: int) -> list[np.ndarray]:
    """`count` consecutive (H, J) chunks of a min-jerk motion through random in-limit waypoints.

    Each segment lasts long enough that its peak velocity (1.875 x distance / duration for a
    min-jerk profile) stays within every joint's velocity limit.
    """
    rng = np.random.default_rng(seed)
    margin = 0.1 * (robot.upper - robot.lower)
    lo, hi = robot.lower + margin, robot.upper - margin
    start = (lo + hi) / 2
    steps = count * chunk_length
    rows: list[np.ndarray] = []
    while sum(len(r) for r in rows) < steps:
        goal = rng.uniform(lo, hi)
        duration = float(np.max(1.875 * np.abs(goal - start) / robot.max_velocity))
        segment = max(chunk_length, int(np.ceil(duration / period_s)) + 1)
        t = np.linspace(0.0, 1.0, segment + 1)[1:, None]
        blend = 10 * t**3 - 15 * t**4 + 6 * t**5  # min-jerk profile
        rows.append(start + blend * (goal - start))  # (segment, J)
        start = goal
    traj = np.concatenate(rows)[:steps]  # (count*H, J)
    return [traj[i * chunk_length : (i + 1) * chunk_length] for i in range(count)]


def _args(argv: list[str], description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--count", type=int, default=10, help="chunks to send / receive")
    parser.add_argument("--robot", type=Path, default=config_path("aloha_bimanual.yaml"), help="robot description YAML")
    parser.add_argument("--rate", type=float, default=10.0, help="talker: chunks per second")
    parser.add_argument("--chunk-length", type=int, default=8)
    parser.add_argument("--period", type=float, default=0.02, help="control period, seconds (ALOHA: 50 Hz)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the peer")
    return parser.parse_args(rclpy.utilities.remove_ros_args(argv)[1:])


def talker_main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    args = _args(argv, "Publish planned ActionChunks.")
    robot = RobotDescription.from_yaml(args.robot)
    rclpy.init(args=argv)
    node = Node("rd_vla_chunk_talker")
    pub = node.create_publisher(ActionChunk, TOPIC, QOS)
    try:
        deadline = time.monotonic() + args.timeout
        while pub.get_subscription_count() == 0:  # discovery: messages sent before a match are lost
            if time.monotonic() > deadline:
                node.get_logger().error(f"no subscriber on {TOPIC} after {args.timeout:.0f} s")
                return 1
            rclpy.spin_once(node, timeout_sec=0.05)
        period = 1.0 / args.rate
        for seq, positions in enumerate(plan_chunks(robot, args.count, args.chunk_length, args.period, args.seed)):
            chunk = ActionChunkData(
                positions=positions,
                joint_names=robot.joint_names,
                execution_horizon=args.chunk_length,
                control_period_s=args.period,
                stamp_ns=node.get_clock().now().nanoseconds,
                sequence=seq,
                residual_trace=[np.nan],
            )
            pub.publish(action_chunk_to_msg(chunk))
            time.sleep(period)
        # Our side may match the subscriber before its side has matched us; a reliable writer resends
        # what the reader missed, but only while it exists: wait for every chunk to be acknowledged.
        if not pub.wait_for_all_acked(Duration(seconds=args.timeout)):
            node.get_logger().error(f"chunks on {TOPIC} not acknowledged within {args.timeout:.0f} s")
            return 1
        node.get_logger().info(f"published {args.count} chunks on {pub.topic_name}")
        return 0
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def echo_main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    args = _args(argv, "Receive ActionChunks, validate them and report latency.")
    robot = RobotDescription.from_yaml(args.robot)
    rclpy.init(args=argv)
    node = Node("rd_vla_chunk_echo")
    received: list[ActionChunkData] = []
    latencies_ms: list[float] = []
    problems: list[str] = []
    previous: list[int] = []

    def on_chunk(msg: ActionChunk) -> None:
        now = node.get_clock().now().nanoseconds
        try:
            chunk = action_chunk_from_msg(msg)
        except ValueError as err:
            problems.append(f"seq {msg.sequence}: {err}")
            return
        if chunk.joint_names != robot.joint_names:
            problems.append(f"seq {chunk.sequence}: joint names differ from {args.robot.name}")
        outside = (chunk.positions < robot.lower) | (chunk.positions > robot.upper)
        if outside.any():
            problems.append(f"seq {chunk.sequence}: {int(outside.sum())} targets outside joint limits")
        velocity = np.abs(np.diff(chunk.positions, axis=0)) / chunk.control_period_s  # (H-1, J)
        if (velocity > robot.max_velocity * 1.001).any():
            problems.append(f"seq {chunk.sequence}: exceeds a joint velocity limit")
        if previous and chunk.sequence != previous[-1] + 1:
            problems.append(f"seq {chunk.sequence}: expected {previous[-1] + 1} (lost or reordered)")
        previous.append(chunk.sequence)
        received.append(chunk)
        latencies_ms.append((now - chunk.stamp_ns) / 1e6)
        sys.stdout.write(
            f"chunk {chunk.sequence:3d}: H={chunk.chunk_length} J={chunk.num_joints} H_exec={chunk.execution_horizon}"
            f" peak joint speed {velocity.max(initial=0.0):.2f} rad/s, latency {latencies_ms[-1]:.2f} ms\n"
        )
        sys.stdout.flush()

    node.create_subscription(ActionChunk, TOPIC, on_chunk, QOS)
    deadline = time.monotonic() + args.timeout
    try:
        while len(received) < args.count and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    for p in problems:
        sys.stdout.write(f"problem: {p}\n")
    if received:
        lat = np.array(latencies_ms)
        sys.stdout.write(
            f"received {len(received)}/{args.count} chunks; latency p50 {np.percentile(lat, 50):.2f} ms,"
            f" max {lat.max():.2f} ms; {len(problems)} problem(s)\n"
        )
    else:
        sys.stdout.write(f"received 0/{args.count} chunks within {args.timeout:.0f} s\n")
    return 0 if len(received) == args.count and not problems else 1


if __name__ == "__main__":
    sys.exit(talker_main())
