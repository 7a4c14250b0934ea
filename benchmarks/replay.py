"""Offline replay cost: throughput and peak memory against bag length and sweep size.

    .venv/bin/python benchmarks/replay.py                  # 10 s and 60 s recordings, tiny model
    .venv/bin/python benchmarks/replay.py --seconds 5 20   # other lengths

For each recording length (written by rd_vla_ros.demos.demo_bag: two 64 px cameras at 25 Hz, joint
states and commands at 50 Hz) and each sweep (the deployed setting alone; deployed + 4 thresholds +
4 fixed depths), the replay runs in this process with an untrained tiny checkpoint, every 5th control
period. Reported: wall seconds, evaluated observations per second, milliseconds per observation and
per head run, and the growth of the process's peak resident memory during the replay (see
common.PeakMemory). Streaming claim: memory growth does not scale with the recording's length.
The last line is key=value pairs for scripts.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PeakMemory, machine, print_table

from rd_vla_ros.demos.demo_bag import write_demo_bag
from rd_vla_ros.model.checkpoint import init_checkpoint, load_policy
from rd_vla_ros.paths import config_path
from rd_vla_ros.robot import RobotDescription
from rd_vla_ros.ros.bags import BagSource, TopicMap
from rd_vla_ros.ros.replay import OfflineReplay, sweep_settings
from rd_vla_ros.runtime.observation import AssemblyLimits
from rd_vla_ros.runtime.runner import PolicyRunner

SWEEPS = {"deployed only": ([], []), "9 settings": ([1e-2, 3e-3, 3e-4, 1e-4], [1, 4, 8, 16])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, nargs="+", default=[10.0, 60.0])
    parser.add_argument("--stride", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    robot = RobotDescription.from_yaml(config_path("aloha_bimanual.yaml"))
    topic_map = TopicMap.from_yaml(config_path("topic_map_aloha.yaml"))
    rows, growth = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = init_checkpoint(Path(tmp) / "ckpt", "tiny", 0)
        policy = load_policy(checkpoint, torch.device("cpu"))
        runner = PolicyRunner(policy, robot.joint_names, policy.config.camera_names)
        for seconds in args.seconds:
            bag_path = write_demo_bag(Path(tmp) / f"bag_{seconds:g}", seconds=seconds)
            for label, (thresholds, depths) in SWEEPS.items():
                sweep = sweep_settings(runner.settings, thresholds, depths)
                engine = OfflineReplay(runner, robot, topic_map, AssemblyLimits(), sweep, stride=args.stride)
                with BagSource(bag_path) as bag, PeakMemory(torch.device("cpu")) as mem:
                    start = time.perf_counter()
                    result = engine.run(bag)
                    wall = time.perf_counter() - start
                heads = sum(len(s.iterations) for s in result.settings)
                growth[(seconds, label)] = mem.growth_mb
                rows.append([f"{seconds:g} s", label, result.evaluated, f"{wall:.1f}", result.evaluated / wall,
                             1e3 * wall / result.evaluated, 1e3 * wall / heads, f"{mem.growth_mb:.1f}"])  # fmt: skip
    print(f"machine: {machine()}")
    print_table(
        f"Offline replay, tiny model, every {args.stride}th control period (benchmarks/replay.py)",
        ["recording", "sweep", "observations", "wall s", "obs/s", "ms/obs", "ms/head run", "peak RSS growth MB"],
        rows,
    )
    short, long = min(args.seconds), max(args.seconds)
    ratio = growth[(long, "9 settings")] / max(growth[(short, "9 settings")], 1e-6)
    print(f"\nmemory_growth_long_over_short={ratio:.2f} long_s={long:g} short_s={short:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
