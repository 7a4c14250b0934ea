"""Helpers shared by the in-process ROS tests."""

from __future__ import annotations

import time
from collections.abc import Callable

from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node


def spin_until(nodes: list[Node], context: Context, condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Spin `nodes` until `condition()` holds or `timeout` seconds pass; return condition()."""
    executor = SingleThreadedExecutor(context=context)
    for node in nodes:
        executor.add_node(node)
    deadline = time.monotonic() + timeout
    try:
        while not condition() and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.02)
    finally:
        executor.shutdown()
    return condition()
