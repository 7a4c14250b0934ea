"""What the ROS node adds on top of the bare policy: latency with 2 and 3 cameras at 30 Hz.

    .venv/bin/python benchmarks/node_latency.py

For each camera count, in one run, alternating six times (the machine's load drifts and has
bursts, so both sides are sampled in the same periods; NODE_LATENCY_SECONDS=60 per side,
NODE_LATENCY_ROUNDS=6): (1) the bare policy - PolicyRunner.run in this process on the same inputs
(224 px RGB frames, resized by the runner, joint positions), while the node idles, first back to
back, then once every 33.3 ms: the node's cadence, since it re-plans on every 30 Hz input here (a
periodic run is slower than a tight loop: caches and the core go cold in between, which is not the
node's doing, so the overhead is taken against this one);
(2) rd_vla_node in its own process (`python -m rd_vla_ros.ros.node`), fed 224 px rgb8 images and
joint states at 30 Hz over DDS by this process, re-planning every control period (fixed depth 12,
horizon 1). Reported per chunk:
  obs -> received  observation assembled in the node -> its ActionChunk received here, in another
                   process (header.stamp + observation_age -> arrival): the node's
                   observation-to-publish latency plus one DDS hop
  overhead         obs -> received minus the bare policy at 30 Hz, at the same percentile
  bare tight       the bare policy back to back, for reference
  publish path     per chunk, obs -> received minus the node's own time for the policy call: message
                   building, publishing, one DDS hop
  node inference   the node's own measure of the policy call (ActionChunk.inference_latency)
  input age        newest input's age when the observation was assembled (ActionChunk.observation_age):
                   sensor phase and the re-planning schedule, not processing
  end to end       newest input's stamp (its publish time here) -> ActionChunk received here
Both use the node's default torch thread count (torch_threads 0: cores - 1, at least 1).
The model is an untrained tiny checkpoint (latency does not depend on the weights). The last line
is key=value pairs for scripts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
import torch
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, percentile_ms, print_table
from rd_vla_ros.msg import ActionChunk

from rd_vla_ros.demos.synthetic import SyntheticSensors
from rd_vla_ros.model.checkpoint import save_policy
from rd_vla_ros.model.config import ALOHA_JOINTS, InferenceSettings, make_config
from rd_vla_ros.model.policy import RDVLAPolicy
from rd_vla_ros.paths import config_path
from rd_vla_ros.ros.conversions import time_to_ns
from rd_vla_ros.ros.params import torch_threads
from rd_vla_ros.runtime.observation import Observation
from rd_vla_ros.runtime.runner import PolicyRunner

DEPTH = 12
RATE_HZ = 30.0  # cameras and joint states; the node re-plans on each new input, so also the bare cadence
SETTINGS = InferenceSettings(fixed_depth=DEPTH, horizon="fixed", horizon_params={"h": 1})


def observation(cameras: list[str]) -> Observation:
    rng = np.random.default_rng(0)
    return Observation(
        images={c: rng.integers(0, 256, (224, 224, 3), dtype=np.uint8) for c in cameras},
        joint_positions=np.zeros(14),
        instruction="transfer the cube",
        stamp_ns=0,
    )


def measure(policy: RDVLAPolicy, checkpoint: Path, cameras: list[str], seconds: float, rounds: int = 3) -> dict:
    """Alternate bare-policy windows (node idle: sensors paused; back to back, then at 30 Hz) and node
    windows, `rounds` times."""
    runner = PolicyRunner(policy, ALOHA_JOINTS, cameras, SETTINGS)
    obs = observation(cameras)
    for _ in range(5):
        runner.run(obs)
    topics = [f"cameras/{c}/image_raw" for c in cameras]
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "rd_vla_ros.ros.node", "--ros-args",
            "--params-file", str(config_path("rd_vla_node.yaml")),
            "-p", f"checkpoint:={checkpoint}", "-p", "autostart:=true", "-p", "instruction:=transfer the cube",
            "-p", f"camera_names:={cameras}".replace("'", '"'), "-p", f"camera_topics:={topics}".replace("'", '"'),
            "-p", f"halting.fixed_depth:={DEPTH}", "-p", "horizon.schedule:=fixed", "-p", "horizon.fixed.h:=1",
            "--log-level", "error",
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    context = Context()
    rclpy.init(context=context)
    sensors = SyntheticSensors(context, cameras, ALOHA_JOINTS, size=224, rate_hz=RATE_HZ)
    node = Node("latency_probe", context=context)
    received: list[tuple[int, ActionChunk]] = []
    node.create_subscription(
        ActionChunk, "/rd_vla_node/action_chunk", lambda m: received.append((time.time_ns(), m)), 50
    )
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    bare: list[float] = []  # at the node's cadence
    tight: list[float] = []  # back to back
    window: list[tuple[int, ActionChunk]] = []
    try:
        deadline = time.monotonic() + 120
        while len(received) < 5 and time.monotonic() < deadline:  # model loaded, discovery done, warm
            time.sleep(0.1)
        for _ in range(rounds):
            sensors.cameras_on = sensors.joints_on = False  # the node idles (inputs stale)
            time.sleep(0.5)
            end = time.monotonic() + seconds / rounds / 2
            while time.monotonic() < end:
                tight.append(runner.run(obs)[1].total_s)
            due = time.monotonic()
            end = due + seconds / rounds
            while due < end:
                due += 1 / RATE_HZ
                time.sleep(max(0.0, due - time.monotonic()))
                bare.append(runner.run(obs)[1].total_s)
            sensors.cameras_on = sensors.joints_on = True
            time.sleep(0.5)
            start = len(received)
            time.sleep(seconds / rounds)
            window += received[start:]
    finally:
        sensors.close()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        proc.terminate()
        proc.wait(timeout=20)
    if not window:
        raise RuntimeError("the node published no chunks")
    since_assembly = [(t - time_to_ns(m.header.stamp)) / 1e9 - m.observation_age for t, m in window]
    return {
        "bare": bare,
        "tight": tight,
        "inference": [m.inference_latency for _, m in window],
        "age": [m.observation_age for _, m in window],
        "e2e": [(t - time_to_ns(m.header.stamp)) / 1e9 for t, m in window],
        "obs_to_received": since_assembly,
        "publish": [s - m.inference_latency for s, (_, m) in zip(since_assembly, window, strict=True)],
    }


def main() -> int:
    seconds = float(os.environ.get("NODE_LATENCY_SECONDS", "60"))  # per side and camera count
    rounds = int(os.environ.get("NODE_LATENCY_ROUNDS", "6"))
    torch.set_num_threads(torch_threads(0))  # the bare policy gets the node's default thread count
    print(f"machine: {machine()}")
    print("command: python benchmarks/node_latency.py")
    rows, summary = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for cams in (["top", "left_wrist"], ["top", "left_wrist", "right_wrist"]):
            torch.manual_seed(0)
            policy = RDVLAPolicy(make_config("tiny", camera_names=cams)).eval()
            checkpoint = save_policy(policy, Path(tmp) / f"cams{len(cams)}")
            m = measure(policy, checkpoint, cams, seconds, rounds)
            bare, published = m["bare"], m["obs_to_received"]
            overhead_p50 = percentile_ms(published, 50) - percentile_ms(bare, 50)
            overhead_p99 = percentile_ms(published, 99) - percentile_ms(bare, 99)
            rows.append([
                len(cams), len(published), percentile_ms(m["tight"], 50), percentile_ms(m["tight"], 99),
                percentile_ms(bare, 50), percentile_ms(bare, 99),
                percentile_ms(published, 50), percentile_ms(published, 99), overhead_p50, overhead_p99,
                percentile_ms(m["inference"], 50), percentile_ms(m["inference"], 99),
                percentile_ms(m["publish"], 50), percentile_ms(m["publish"], 99),
                percentile_ms(m["age"], 50), percentile_ms(m["age"], 99),
                percentile_ms(m["e2e"], 50), percentile_ms(m["e2e"], 99),
            ])  # fmt: skip
            suffix = "" if len(cams) == 2 else f"_{len(cams)}cam"
            summary[f"overhead_p99_ms{suffix}"] = overhead_p99
            summary[f"overhead_p50_ms{suffix}"] = overhead_p50
            summary[f"obs_to_publish_p99_ms{suffix}"] = percentile_ms(published, 99)
            summary[f"policy_call_p99_ms{suffix}"] = percentile_ms(m["inference"], 99)
            summary[f"publish_path_p99_ms{suffix}"] = percentile_ms(m["publish"], 99)
            summary[f"e2e_p99_ms{suffix}"] = percentile_ms(m["e2e"], 99)
    print_table(
        f"tiny model, fixed depth {DEPTH}, 224 px rgb8 cameras + joint states at 30 Hz, re-plan every 20 ms period",
        ["cameras", "chunks", "bare tight p50 ms", "bare tight p99 ms", "bare 30 Hz p50 ms", "bare 30 Hz p99 ms",
         "obs->received p50 ms", "obs->received p99 ms",
         "overhead p50 ms", "overhead p99 ms", "node inference p50 ms", "node inference p99 ms",
         "publish path p50 ms", "publish path p99 ms",
         "input age p50 ms", "input age p99 ms", "end to end p50 ms", "end to end p99 ms"],
        rows,
    )  # fmt: skip
    print("\n" + " ".join(f"{k}={v:.3f}" for k, v in summary.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
