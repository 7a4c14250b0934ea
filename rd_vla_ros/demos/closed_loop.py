"""The closed loop over DDS: simulated ALOHA (sim bridge) <-> the unmodified rd_vla_node.

The node runs in its own process (`python -m rd_vla_ros.ros.node`, use_sim_time, motion enabled,
the given checkpoint); this process runs the simulation bridge, which publishes cameras, joint
states and /clock and executes the node's JointTrajectory commands, and listens to the node's
ActionChunks. Prints per episode: success, iterations per chunk, execution horizons, latency; writes
a contact sheet (camera frames annotated with the k* and H_exec of the chunk being executed).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from rd_vla_ros.msg import ActionChunk
from rd_vla_ros.paths import config_path
from rd_vla_ros.ros.conversions import time_to_ns
from rd_vla_ros.sim.bridge import SimBridge


def contact_sheet(frames: list[tuple[int, np.ndarray]], chunks: list[tuple[int, int, int]], path: Path,
                  title: str, columns: int = 8) -> Path:  # fmt: skip
    """frames: (time ns, (S, S, 3)); chunks: (stamp ns, k*, H_exec). Each frame is labelled with the
    chunk whose observation is the latest at or before it."""
    from PIL import Image, ImageDraw

    scale = 2
    size = frames[0][1].shape[0] * scale
    rows = (len(frames) + columns - 1) // columns
    label_h = 14
    sheet = Image.new("RGB", (columns * size, rows * (size + label_h) + 18), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((4, 3), title, fill="black")
    stamps = np.array([c[0] for c in chunks]) if chunks else np.array([], dtype=np.int64)
    for i, (t, img) in enumerate(frames):
        x, y = (i % columns) * size, 18 + (i // columns) * (size + label_h)
        sheet.paste(Image.fromarray(img).resize((size, size), Image.NEAREST), (x, y))
        j = int(np.searchsorted(stamps, t, side="right")) - 1
        label = f"k*={chunks[j][1]} H={chunks[j][2]}" if j >= 0 else "waiting"
        draw.text((x + 2, y + size + 1), label, fill="black")
    sheet.save(path)
    return path


def run(checkpoint: str, episodes: list[tuple[str, int]], workdir: Path, real_time_factor: float = 0.5,
        steps: int = 400, frame_every: int = 25) -> tuple[int, list[dict]]:  # fmt: skip
    """Run the loop; returns (exit status, episode results)."""
    workdir.mkdir(parents=True, exist_ok=True)
    log = open(workdir / "node.log", "w")  # noqa: SIM115
    node = subprocess.Popen(
        [sys.executable, "-m", "rd_vla_ros.ros.node", "--ros-args", "--params-file",
         str(config_path("rd_vla_node.yaml")), "-p", f"checkpoint:={checkpoint}", "-p", "autostart:=true",
         "-p", "use_sim_time:=true", "-p", "motion_enabled:=true"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    context = Context()
    rclpy.init(context=context)
    bridge = SimBridge(episodes, ["top", "left_wrist"], 64, real_time_factor, steps, context=context)
    bridge.keep_frame_every = frame_every
    listener = Node("rd_vla_demo_listener", context=context)
    chunks: list[tuple[int, int, int, float]] = []
    listener.create_subscription(
        ActionChunk, "/rd_vla_node/action_chunk",
        lambda m: chunks.append((time_to_ns(m.header.stamp), m.iterations, m.execution_horizon, m.inference_latency)),
        10,
    )  # fmt: skip
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(bridge)
    executor.add_node(listener)
    threading.Thread(target=executor.spin, daemon=True).start()
    try:
        bridge.sim.reset(episodes[0][1])
        bridge.idle(60.0, until=lambda: bool(chunks) or node.poll() is not None)  # the node starts up
        if not chunks:
            sys.stdout.write(f"the node produced no chunk within 60 s; see {workdir / 'node.log'}\n")
            return 1, []
        results = []
        for task, seed in episodes:
            start = len(chunks)
            result = bridge.run_episode(task, seed)
            mine = [c for c in chunks[start:] if result["start_ns"] <= c[0] <= result["end_ns"]]
            its = [c[1] for c in mine]
            horizons = [c[2] for c in mine]
            latency = [c[3] * 1e3 for c in mine]
            result.update(chunks=len(mine), mean_iterations=float(np.mean(its)) if its else float("nan"),
                          horizons={str(h): horizons.count(h) for h in sorted(set(horizons))},
                          latency_ms_p50=float(np.median(latency)) if latency else float("nan"))  # fmt: skip
            results.append(result)
            sys.stdout.write(
                f"{task} seed {seed}: success reached={result['reached']} final={result['final']} "
                f"(max reward {result['max_reward']}), {len(mine)} chunks, mean k* {result['mean_iterations']:.1f}, "
                f"H_exec {result['horizons']}, latency p50 {result['latency_ms_p50']:.1f} ms\n"
            )
            sys.stdout.flush()
        if bridge.frames:
            title = f"rd_vla_node + simulated ALOHA ({', '.join(f'{t}:{s}' for t, s in episodes)})"
            sheet = contact_sheet(bridge.frames, [(c[0], c[1], c[2]) for c in chunks], workdir / "closed_loop.png",
                                  title)  # fmt: skip
            sys.stdout.write(f"contact sheet: {sheet}\n")
        return 0, results
    finally:
        executor.shutdown()
        bridge.close()
        listener.destroy_node()
        bridge.destroy_node()
        rclpy.try_shutdown(context=context)
        node.terminate()
        try:
            node.wait(timeout=20)
        except subprocess.TimeoutExpired:
            node.kill()
        log.close()
