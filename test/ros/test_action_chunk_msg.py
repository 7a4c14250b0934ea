"""The generated ActionChunk type: conversions, CDR serialisation, in-process pub/sub."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from rclpy.serialization import deserialize_message, serialize_message
from rd_vla_ros.msg import ActionChunk
from ros_helpers import spin_until

from rd_vla_ros.ros.conversions import (
    MAX_TIME_NS,
    action_chunk_from_msg,
    action_chunk_to_msg,
    duration_to_s,
    ns_to_time,
    s_to_duration,
    time_to_ns,
)
from rd_vla_ros.runtime.chunk import ActionChunkData

pytestmark = pytest.mark.ros


def assert_same_chunk(a: ActionChunkData, b: ActionChunkData) -> None:
    np.testing.assert_array_equal(a.positions, b.positions)
    np.testing.assert_array_equal(a.residual_trace, b.residual_trace)  # NaN == NaN here
    for name in (
        "joint_names", "execution_horizon", "stamp_ns", "sequence", "iterations", "min_iterations",
        "max_iterations", "converged", "halting_strategy", "input_stamps",
    ):  # fmt: skip
        assert getattr(a, name) == getattr(b, name), name
    assert a.control_period_s == pytest.approx(b.control_period_s, abs=1e-9)
    for name in (
        "halting_threshold",
        "backbone_latency_s",
        "head_latency_s",
        "inference_latency_s",
        "observation_age_s",
    ):
        assert getattr(a, name) == getattr(b, name), name
    assert a.halting_residual == b.halting_residual or (
        math.isnan(a.halting_residual) and math.isnan(b.halting_residual)
    )


@st.composite
def chunks(draw: st.DrawFn) -> ActionChunkData:
    h = draw(st.integers(1, 16))
    j = draw(st.integers(1, 16))
    k_max = draw(st.integers(1, 64))
    k = draw(st.integers(1, k_max))
    finite = st.floats(-1e6, 1e6, allow_nan=False, width=64)
    positions = np.array(draw(st.lists(finite, min_size=h * j, max_size=h * j))).reshape(h, j)
    trace = [math.nan, *draw(st.lists(st.floats(0, 10, allow_nan=False), min_size=k - 1, max_size=k - 1))]
    return ActionChunkData(
        positions=positions,
        joint_names=[f"joint_{i}" for i in range(j)],
        execution_horizon=draw(st.integers(1, h)),
        control_period_s=draw(st.sampled_from([0.02, 1 / 30, 0.1, 1.5])),
        stamp_ns=draw(st.integers(0, MAX_TIME_NS)),
        sequence=draw(st.integers(0, 2**63)),
        iterations=k,
        min_iterations=draw(st.integers(1, k_max)),
        max_iterations=k_max,
        converged=draw(st.booleans()),
        halting_strategy=draw(st.sampled_from(["action_mse", "cosine", "fixed"])),
        halting_threshold=draw(st.floats(1e-9, 1.0)),
        halting_residual=trace[-1],
        residual_trace=trace,
        backbone_latency_s=draw(st.floats(0, 1)),
        head_latency_s=draw(st.floats(0, 1)),
        inference_latency_s=draw(st.floats(0, 2)),
        observation_age_s=draw(st.floats(0, 1)),
        input_stamps=draw(
            st.dictionaries(st.sampled_from(["top", "left_wrist", "joint_states"]), st.integers(0, MAX_TIME_NS))
        ),
    )


@settings(max_examples=60, deadline=None)
@given(chunks())
def test_message_and_cdr_round_trip(chunk: ActionChunkData) -> None:
    msg = action_chunk_to_msg(chunk)
    assert msg.chunk_length * len(msg.joint_names) == len(msg.positions)
    data = serialize_message(msg)
    assert isinstance(data, bytes) and len(data) > 8 * len(msg.positions)
    back = action_chunk_from_msg(deserialize_message(data, ActionChunk))
    assert_same_chunk(chunk, back)


def test_positions_are_row_major() -> None:
    positions = np.arange(6, dtype=np.float64).reshape(3, 2)  # rows = time steps
    chunk = ActionChunkData(positions, ["a", "b"], 2, 0.02, residual_trace=[math.nan])
    msg = action_chunk_to_msg(chunk)
    assert list(msg.positions) == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]


def test_inconsistent_message_is_rejected() -> None:
    msg = action_chunk_to_msg(ActionChunkData(np.zeros((4, 2)), ["a", "b"], 2, 0.02, residual_trace=[0.0]))
    msg.chunk_length = 5
    with pytest.raises(ValueError, match="expected chunk_length\\*joints = 5\\*2"):
        action_chunk_from_msg(msg)


@given(st.integers(0, MAX_TIME_NS))
def test_time_round_trip(ns: int) -> None:
    assert time_to_ns(ns_to_time(ns)) == ns


@pytest.mark.parametrize("seconds", [0.0, 0.02, 1 / 30, 2.5, -0.25])
def test_duration_round_trip(seconds: float) -> None:
    d = s_to_duration(seconds)
    assert 0 <= d.nanosec < 1_000_000_000
    assert duration_to_s(d) == pytest.approx(seconds, abs=1e-9)


def test_in_process_publish_subscribe(make_node, ros_context) -> None:
    pub_node, sub_node = make_node("chunk_pub"), make_node("chunk_sub")
    qos = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE)
    received: list[ActionChunk] = []
    sub_node.create_subscription(ActionChunk, "test_chunks", received.append, qos)
    pub = pub_node.create_publisher(ActionChunk, "test_chunks", qos)
    assert spin_until([pub_node, sub_node], ros_context, lambda: pub.get_subscription_count() > 0)
    sent = ActionChunkData(
        np.linspace(-1, 1, 8 * 14).reshape(8, 14), [f"j{i}" for i in range(14)], 5, 0.02,
        stamp_ns=123_456_789_012, sequence=7, iterations=4, max_iterations=32, converged=True,
        halting_strategy="action_mse", halting_threshold=1e-3, halting_residual=4e-4,
        residual_trace=[math.nan, 0.1, 0.01, 4e-4],
    )  # fmt: skip
    pub.publish(action_chunk_to_msg(sent))
    assert spin_until([pub_node, sub_node], ros_context, lambda: len(received) == 1)
    assert_same_chunk(sent, action_chunk_from_msg(received[0]))
