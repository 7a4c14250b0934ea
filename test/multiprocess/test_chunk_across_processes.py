"""ActionChunk over DDS between separate processes (FastDDS, localhost, test-unique domain)."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from rd_vla_ros.msg import ActionChunk

from rd_vla_ros.ros.conversions import action_chunk_from_msg, action_chunk_to_msg
from rd_vla_ros.runtime.chunk import ActionChunkData

pytestmark = pytest.mark.multiprocess
HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def test_chunk_round_trips_through_another_process() -> None:
    n = 5
    relay = subprocess.Popen(
        [sys.executable, str(HERE / "chunk_relay.py"), str(n), "30"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    context = Context()
    rclpy.init(context=context)
    node = Node("relay_tester", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    qos = QoSProfile(depth=50, reliability=QoSReliabilityPolicy.RELIABLE)
    received: list[ActionChunk] = []
    node.create_subscription(ActionChunk, "relay_out", received.append, qos)
    pub = node.create_publisher(ActionChunk, "relay_in", qos)
    rng = np.random.default_rng(3)
    sent = [
        ActionChunkData(
            rng.normal(size=(8, 14)), [f"joint_{j}" for j in range(14)], 1 + i, 0.02,
            stamp_ns=1_700_000_000_000_000_000 + i, sequence=i, iterations=2 + i, max_iterations=32,
            converged=i % 2 == 0, halting_strategy="action_mse", halting_threshold=1e-3,
            halting_residual=float(10.0 ** -(i + 1)),
            residual_trace=[math.nan, *[10.0 ** -(k + 1) for k in range(i + 1)]],
        )
        for i in range(n)
    ]  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while (pub.get_subscription_count() == 0 or node.count_publishers("relay_out") == 0) and (
            time.monotonic() < deadline
        ):
            executor.spin_once(timeout_sec=0.05)
        assert pub.get_subscription_count() > 0, "relay process never subscribed"
        time.sleep(0.3)  # let the relay's publisher finish matching our subscription
        for chunk in sent:
            pub.publish(action_chunk_to_msg(chunk))
        deadline = time.monotonic() + 15
        while len(received) < n and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        try:
            out, _ = relay.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            relay.kill()  # never left behind, spinning
            out = relay.communicate()[0] + "\n(the relay did not exit within 30 s)"
    assert relay.returncode == 0, out
    assert len(received) == n
    for chunk, msg in zip(sent, received, strict=True):
        back = action_chunk_from_msg(msg)
        np.testing.assert_array_equal(back.positions, chunk.positions)
        np.testing.assert_array_equal(back.residual_trace, chunk.residual_trace)
        assert (back.sequence, back.execution_horizon, back.iterations, back.converged) == (
            chunk.sequence, chunk.execution_horizon, chunk.iterations, chunk.converged,
        )  # fmt: skip
        assert back.stamp_ns == chunk.stamp_ns


def test_talker_and_echo_commands_across_processes() -> None:
    echo = subprocess.Popen(
        [str(BIN / "rd_vla_chunk_echo"), "--count", "6", "--timeout", "30"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    talker = subprocess.run(
        [str(BIN / "rd_vla_chunk_talker"), "--count", "6", "--rate", "20", "--ros-args", "--log-level", "warn"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    out, _ = echo.communicate(timeout=60)
    assert talker.returncode == 0, talker.stderr
    assert echo.returncode == 0, out
    assert "received 6/6 chunks" in out and "0 problem(s)" in out
    assert out.count("H=8 J=14") == 6
