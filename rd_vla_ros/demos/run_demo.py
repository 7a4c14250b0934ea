"""`make demo`: the package's main job on its defaults.

1. The policy node end to end (rd_vla_ros.demos.node_demo): its own process, synthetic cameras and
   joint states at 30 Hz over DDS, an untrained tiny checkpoint, a depth change at run time.
2. Offline replay (rd-vla replay) of a small ALOHA-style recording written for the demo (rosbag2,
   mcap): the same checkpoint scored against the recorded commands, with a halting sweep and a
   report (Markdown, JSON, PNG plots) in build/demo/replay.
3. ActionChunks between two processes, validated against the ALOHA description (chunk_loopback).
Exit status is non-zero when any part fails.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from rd_vla_ros.cli import init_checkpoint
from rd_vla_ros.cli import main as rd_vla
from rd_vla_ros.demos.demo_bag import write_demo_bag
from rd_vla_ros.demos.node_demo import run as run_node_demo

COUNT = 10


def main() -> int:
    workdir = Path("build") / "demo"
    workdir.mkdir(parents=True, exist_ok=True)
    sys.stdout.write("== rd_vla_ros demo 1/3: rd_vla_node over DDS (untrained tiny model, synthetic sensors)\n")
    sys.stdout.flush()
    node_rc = run_node_demo(workdir)
    sys.stdout.write("\n== rd_vla_ros demo 2/3: offline replay of a recorded bag, halting sweep and report\n")
    sys.stdout.flush()
    replay_rc = run_replay_demo(workdir)
    sys.stdout.write(f"\n== rd_vla_ros demo 3/3: {COUNT} ActionChunks from a talker process to an echo process\n")
    sys.stdout.flush()
    bindir = Path(sys.executable).parent
    echo = subprocess.Popen([str(bindir / "rd_vla_chunk_echo"), "--count", str(COUNT), "--timeout", "60"])
    talker = subprocess.run(
        [str(bindir / "rd_vla_chunk_talker"), "--count", str(COUNT), "--rate", "20"], timeout=120, check=False
    )
    echo_rc = echo.wait(timeout=120)
    ok = node_rc == 0 and replay_rc == 0 and talker.returncode == 0 and echo_rc == 0
    sys.stdout.write(f"\ndemo {'OK' if ok else 'FAILED'}\n")
    return 0 if ok else 1


def run_replay_demo(workdir: Path) -> int:
    """Write a 2 s recording (fresh each run) and replay the untrained tiny checkpoint on it."""
    bag = workdir / "recording"
    if bag.exists():
        shutil.rmtree(bag)
    write_demo_bag(bag, seconds=2.0)
    checkpoint = workdir / "tiny_untrained"
    if not (checkpoint / "config.json").is_file():
        init_checkpoint(checkpoint, "tiny", 0)
    return rd_vla(["replay", str(bag), "--checkpoint", str(checkpoint), "--out", str(workdir / "replay"),
                   "--thresholds", "1e-2,1e-3", "--fixed-depths", "1,4,8,16", "--quiet"])  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
