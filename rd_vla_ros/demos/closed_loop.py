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

from rd_vla_ros.model.checkpoint import read_config
from rd_vla_ros.msg import ActionChunk
from rd_vla_ros.paths import config_path
from rd_vla_ros.ros.conversions import time_to_ns
from rd_vla_ros.sim.bridge import SimBridge


def contact_sheet(frames: list[tuple[int, np.ndarray]], chunks: list[tuple[int, int, int]], episodes: list[dict],
                  path: Path, title: str, columns: int = 8, min_size: int = 128) -> Path:  # fmt: skip
    """One row per episode, in colour: a band naming the task, the seed and the outcome (green
    success, red failure), then `columns` frames spread over the episode, each labelled with its
    time in the episode and the k* / H_exec of the chunk being executed.

    frames: (time ns, (S, S, 3) uint8); chunks: (stamp ns, k*, H_exec); episodes: the bridge's
    results (task, seed, reached, final, max_reward, start_ns, end_ns)."""
    from PIL import Image, ImageDraw

    size = frames[0][1].shape[0]
    size *= -(-min_size // size)  # an integer scale to at least min_size px
    band, label_h = 16, 14
    sheet = Image.new("RGB", (columns * size, 20 + len(episodes) * (band + size + label_h)), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((4, 4), title, fill="black")
    stamps = np.array([c[0] for c in chunks], dtype=np.int64)
    times = np.array([t for t, _ in frames], dtype=np.int64)
    for row, e in enumerate(episodes):
        y = 20 + row * (band + size + label_h)
        ok = bool(e["final"] if e["task"] == "transfer_cube" else e["reached"])
        outcome = "SUCCESS" if ok else "FAILURE"
        draw.rectangle((0, y, columns * size - 1, y + band - 2), fill=(40, 140, 60) if ok else (180, 40, 40))
        draw.text((4, y + 2), f"{e['task']} seed {e['seed']}: {outcome} (reached 4: {e['reached']}, "
                              f"4 at the end: {e['final']}, max reward {e['max_reward']})", fill="white")  # fmt: skip
        inside = np.flatnonzero((times >= e["start_ns"]) & (times <= e["end_ns"]))
        if inside.size == 0:
            continue
        picks = inside[np.linspace(0, inside.size - 1, min(columns, inside.size)).round().astype(int)]
        for col, i in enumerate(picks):
            t, img = frames[i]
            x = col * size
            sheet.paste(Image.fromarray(img).resize((size, size), Image.NEAREST), (x, y + band))
            j = int(np.searchsorted(stamps, t, side="right")) - 1
            chunk = f"k*={chunks[j][1]} H={chunks[j][2]}" if j >= 0 and stamps[j] >= e["start_ns"] else "waiting"
            draw.text((x + 2, y + band + size + 1), f"t={(t - e['start_ns']) / 1e9:.1f}s {chunk}", fill="black")
    sheet.save(path)
    return path


def run(checkpoint: str, episodes: list[tuple[str, int]], workdir: Path, real_time_factor: float = 0.5,
        steps: int = 400, frame_every: int = 25) -> tuple[int, list[dict]]:  # fmt: skip
    """Run the loop; returns (exit status, episode results)."""
    workdir.mkdir(parents=True, exist_ok=True)
    config, _ = read_config(checkpoint)  # the sim renders what the checkpoint sees
    cameras = list(config.camera_names)
    log = open(workdir / "node.log", "w")  # noqa: SIM115
    node = subprocess.Popen(
        [sys.executable, "-m", "rd_vla_ros.ros.node", "--ros-args", "--params-file",
         str(config_path("rd_vla_node.yaml")), "-p", f"checkpoint:={checkpoint}", "-p", "autostart:=true",
         "-p", "use_sim_time:=true", "-p", "motion_enabled:=true",
         "-p", f"camera_names:=[{','.join(cameras)}]",
         "-p", f"camera_topics:=[{','.join(f'cameras/{c}/image_raw' for c in cameras)}]"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    context = Context()
    rclpy.init(context=context)
    bridge = SimBridge(episodes, cameras, real_time_factor=real_time_factor, steps=steps, context=context)
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
            sheet = contact_sheet(bridge.frames, [(c[0], c[1], c[2]) for c in chunks], results,
                                  workdir / "closed_loop.png", title)  # fmt: skip
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
