"""The policy node end to end over DDS, on synthetic sensors, with the embedded checkpoint.

Starts rd_vla_node in its own process (`python -m rd_vla_ros.ros.node`, shipped parameters), feeds
it two 224 px cameras and ALOHA joint states at 30 Hz, prints the ActionChunks it publishes, changes
the depth at run time through the SetParameters service (adaptive, capped at 32 -> fixed depth 4),
and summarises iterations, horizons and latency. The images are synthetic, so the chunks mean
nothing for a task; what shows is the machinery: the trained head's halting fires after a few
iterations (k* varies, so does the execution horizon), then the depth is pinned at run time.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import rclpy
from rcl_interfaces.srv import SetParameters
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter

from rd_vla_ros.demos.synthetic import SyntheticSensors
from rd_vla_ros.model.config import ALOHA_JOINTS
from rd_vla_ros.msg import ActionChunk
from rd_vla_ros.paths import config_path
from rd_vla_ros.ros.conversions import time_to_ns


def run(checkpoint: Path, seconds_per_phase: float = 4.0) -> int:
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "rd_vla_ros.ros.node", "--ros-args",
            "--params-file", str(config_path("rd_vla_node.yaml")),
            "-p", f"checkpoint:={checkpoint}", "-p", "autostart:=true", "-p", "instruction:=transfer the cube",
            "-p", "halting.max_iterations:=32", "--log-level", "error",
        ]
    )  # fmt: skip
    context = Context()
    rclpy.init(context=context)
    sensors = SyntheticSensors(context, ["top", "left_wrist"], ALOHA_JOINTS)
    node = Node("demo_probe", context=context)
    chunks: list[tuple[int, ActionChunk]] = []
    node.create_subscription(ActionChunk, "/rd_vla_node/action_chunk", lambda m: chunks.append((time.time_ns(), m)), 50)
    client = node.create_client(SetParameters, "/rd_vla_node/set_parameters")
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    phases: list[tuple[str, list[tuple[int, ActionChunk]]]] = []
    try:
        deadline = time.monotonic() + 90
        while not chunks and time.monotonic() < deadline:
            time.sleep(0.1)
        if not chunks:
            sys.stdout.write("demo: the node published nothing within 90 s\n")
            return 1
        for label, change in (("adaptive (action_mse, delta 1e-3, cap 32)", None), ("fixed depth 4", 4)):
            if change is not None:
                request = SetParameters.Request(
                    parameters=[Parameter("halting.fixed_depth", value=change).to_parameter_msg()]
                )
                future = client.call_async(request)
                while not future.done():
                    time.sleep(0.01)
                sys.stdout.write(
                    f"\n-- set halting.fixed_depth={change} from this process: {future.result().results[0]}\n"
                )
                time.sleep(0.3)
            start = len(chunks)
            time.sleep(seconds_per_phase)
            window = chunks[start:]
            phases.append((label, window))
            for received_ns, msg in window[:: max(1, len(window) // 6)]:
                sys.stdout.write(
                    f"chunk {msg.sequence:4d}: k*={msg.iterations:2d} converged={msg.converged!s:5} "
                    f"H_exec={msg.execution_horizon} residual={msg.halting_residual:.2e} "
                    f"input age {msg.observation_age * 1e3:4.1f} ms + inference {msg.inference_latency * 1e3:5.1f} ms "
                    f"-> received {(received_ns - time_to_ns(msg.header.stamp)) / 1e6:5.1f} ms after the newest input\n"
                )
    finally:
        sensors.close()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        proc.terminate()
        proc.wait(timeout=20)
    sys.stdout.write("\nphase | chunks | k* histogram | H_exec histogram | inference p50 / p99 ms\n")
    for label, window in phases:
        lat = np.array([m.inference_latency for _, m in window]) * 1e3
        ks = Counter(m.iterations for _, m in window)
        hs = Counter(m.execution_horizon for _, m in window)
        sys.stdout.write(
            f"{label} | {len(window)} | {dict(sorted(ks.items()))} | {dict(sorted(hs.items()))} | "
            f"{np.percentile(lat, 50):.1f} / {np.percentile(lat, 99):.1f}\n"
        )
    adaptive, fixed = (window for _, window in phases)
    ok = bool(adaptive and fixed) and any(m.converged for _, m in adaptive) and {m.iterations for _, m in fixed} == {4}
    return 0 if ok else 1
