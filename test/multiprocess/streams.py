"""A fake ALOHA robot for multi-process tests: cameras and joint states published at a fixed rate."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import rclpy
import torch
from rclpy.context import Context

from rd_vla_ros.demos.synthetic import SyntheticSensors
from rd_vla_ros.model.checkpoint import save_policy
from rd_vla_ros.model.config import ALOHA_JOINTS, make_config
from rd_vla_ros.model.policy import RDVLAPolicy


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


class FakeRobot(SyntheticSensors):
    """ALOHA's joints and two 224 px cameras at 30 Hz."""

    def __init__(self, context: Context, cameras: list[str], size: int = 224, rate_hz: float = 30.0) -> None:
        super().__init__(context, cameras, ALOHA_JOINTS, size, rate_hz)


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
