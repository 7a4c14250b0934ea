"""The fast Image encoder produces exactly rclpy's bytes."""

from __future__ import annotations

import array

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import Image

from rd_vla_ros.ros.cdr import image_cdr


@pytest.mark.parametrize(
    ("frame_id", "encoding", "h", "w", "c"),
    [
        ("camera", "rgb8", 5, 7, 3),
        ("", "mono8", 3, 3, 1),
        ("top_cam_optical", "bgr8", 4, 2, 3),
        ("x", "16UC1", 2, 3, 2),
    ],
)
def test_matches_rclpy_serialization(frame_id: str, encoding: str, h: int, w: int, c: int) -> None:
    data = np.random.default_rng(0).integers(0, 256, size=h * w * c, dtype=np.uint8).tobytes()
    msg = Image(height=h, width=w, encoding=encoding, step=w * c, data=array.array("B", data))
    msg.header.frame_id = frame_id
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1_795_000_000, 123_456_789
    fast = image_cdr(1_795_000_000_123_456_789, frame_id, h, w, encoding, w * c, data)
    reference = serialize_message(msg)
    assert len(fast) == len(reference)
    # rclpy leaves alignment padding uninitialised: bytes may differ only there (zeros in ours, and
    # at most 3 before each 4-byte aligned field)
    differ = [i for i, (a, b) in enumerate(zip(fast, reference, strict=True)) if a != b]
    assert all(fast[i] == 0 and (i - 4) % 4 != 0 for i in differ) and len(differ) <= 6, differ
    back = deserialize_message(fast, Image)
    assert bytes(back.data) == data and back.encoding == encoding and back.header.frame_id == frame_id
    assert (back.height, back.width, back.step) == (h, w, w * c)
    assert (back.header.stamp.sec, back.header.stamp.nanosec) == (1_795_000_000, 123_456_789)
