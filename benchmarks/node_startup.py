"""How long rd_vla_node takes to come up: import, construction, configure, activate.

    .venv/bin/python benchmarks/node_startup.py [--repeats 3] [--runtimes torch onnxruntime]

Each repeat is a fresh process (nothing cached in the interpreter; the OS file cache is warm after
the first) that imports the node module, builds the node with the embedded checkpoint, and walks it
through configure (robot description, checkpoint load: transformers is imported here for the torch
runtime, onnxruntime for that one) and activate (warm-up inferences at the deepest setting, then the
inference thread starts). The onnxruntime runtime runs an export of the embedded checkpoint made
first (not timed). Prints a table of medians (min-max) in seconds; the last line is key=value pairs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import machine

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import rclpy
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from rd_vla_ros.ros.node import RDVLANode
t1 = time.perf_counter()
rclpy.init()
overrides = [Parameter("runtime", value=sys.argv[1]), Parameter("checkpoint", value=sys.argv[2])]
node = RDVLANode(parameter_overrides=overrides)
t2 = time.perf_counter()
assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
t3 = time.perf_counter()
assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
t4 = time.perf_counter()
node.trigger_deactivate()
node.destroy_node()
rclpy.try_shutdown()
print(json.dumps({"import": t1 - t0, "construct": t2 - t1, "configure": t3 - t2, "activate": t4 - t3}))
"""

PHASES = ("import", "construct", "configure", "activate")


def measure(runtime: str, checkpoint: str, repeats: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {p: [] for p in PHASES}
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", CHILD, runtime, checkpoint], capture_output=True, text=True,
                             check=True, timeout=300)  # fmt: skip
        for phase, seconds in json.loads(out.stdout.strip().splitlines()[-1]).items():
            samples[phase].append(seconds)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--runtimes", nargs="+", default=["torch", "onnxruntime"], choices=["torch", "onnxruntime"])
    args = parser.parse_args()
    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for runtime in args.runtimes:
            checkpoint = "embedded"
            if runtime == "onnxruntime":
                checkpoint = str(Path(tmp) / "embedded_onnx")
                subprocess.run([sys.executable, "-m", "rd_vla_ros.cli", "export", "embedded", checkpoint],
                               check=True, capture_output=True, timeout=600)  # fmt: skip
            results[runtime] = measure(runtime, checkpoint, args.repeats)
    print(f"machine: {machine()}")
    print(f"rd_vla_node start-up, embedded checkpoint, {args.repeats} fresh processes each: median (min-max) s\n")
    print("| runtime | " + " | ".join(PHASES) + " | total |")
    print("|---|" + "---|" * (len(PHASES) + 1))
    keys = []
    for runtime, samples in results.items():
        totals = [sum(s) for s in zip(*samples.values(), strict=True)]
        cells = [f"{statistics.median(v):.2f} ({min(v):.2f}-{max(v):.2f})" for v in [*samples.values(), totals]]
        print(f"| {runtime} | " + " | ".join(cells) + " |")
        keys += [f"{runtime}_{p}_s={statistics.median(v):.3f}" for p, v in samples.items()]
        keys.append(f"{runtime}_total_s={statistics.median(totals):.3f}")
    print("\n" + " ".join(keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
