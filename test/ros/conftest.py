"""Fixtures for tests that use rclpy in the test process."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import rclpy
from rclpy.context import Context
from rclpy.node import Node


@pytest.fixture
def ros_context() -> Iterator[Context]:
    """A fresh rclpy context per test, shut down afterwards."""
    context = Context()
    rclpy.init(context=context)
    try:
        yield context
    finally:
        rclpy.try_shutdown(context=context)


@pytest.fixture
def make_node(ros_context: Context) -> Iterator[Callable[[str], Node]]:
    nodes: list[Node] = []

    def make(name: str) -> Node:
        node = Node(name, context=ros_context)
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        node.destroy_node()
