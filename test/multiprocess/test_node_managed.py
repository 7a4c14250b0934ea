"""rd_vla_node in its own process without autostart, driven by a lifecycle manager in another process
(the /change_state service, as `ros2 lifecycle set` or nav2's lifecycle manager would), then stopped
with SIGINT (Ctrl-C) while active."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from streams import init_context

from rd_vla_ros.model.checkpoint import init_checkpoint
from rd_vla_ros.paths import config_path

pytestmark = pytest.mark.multiprocess
NAME = "managed_rd_vla_node"  # not the other tests' node name: a node still exiting must not answer


def test_a_lifecycle_manager_drives_it_and_sigint_ends_it_from_active(tmp_path: Path) -> None:
    checkpoint = init_checkpoint(tmp_path / "ckpt", "tiny", seed=0)
    proc = subprocess.Popen(
        [sys.executable, "-m", "rd_vla_ros.ros.node", "--ros-args", "-r", f"__node:={NAME}",
         "--params-file", str(config_path("rd_vla_node.yaml")), "-p", f"checkpoint:={checkpoint}",
         "-p", "instruction:=pick"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    context = init_context()
    manager = Node("lifecycle_manager", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(manager)

    def call(client, request, timeout: float = 30.0):
        future = client.call_async(request)
        deadline = time.monotonic() + timeout
        while not future.done() and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        assert future.done(), f"no answer from {client.srv_name}"
        return future.result()

    try:
        change = manager.create_client(ChangeState, f"/{NAME}/change_state")
        get = manager.create_client(GetState, f"/{NAME}/get_state")
        assert change.wait_for_service(timeout_sec=60) and get.wait_for_service(timeout_sec=10)
        assert call(get, GetState.Request()).current_state.label == "unconfigured"  # no autostart
        for transition in (Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE):
            assert call(change, ChangeState.Request(transition=Transition(id=transition))).success
        assert call(get, GetState.Request()).current_state.label == "active"
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
        executor.shutdown()
        manager.destroy_node()
        context.try_shutdown()
    assert proc.returncode == 0, out
    assert "SIGINT: ending from active" in out and "inactive: no more commands" in out, out
    assert "Traceback" not in out, out
