"""`make demo`: the package's main job on its defaults (the embedded model).

1. The closed loop over DDS: the simulated bimanual ALOHA (sim bridge: cameras, joint states,
   /clock, joint_trajectory_controller-style execution) driven by the unmodified rd_vla_node in its
   own process with the embedded checkpoint, one TransferCube and one Insertion episode on held-out
   seeds. Prints success, iterations per chunk, execution horizons, latency; writes a contact sheet.
2. Offline replay (rd-vla replay) of a scripted demonstration on a held-out seed (never trained on)
   recorded as a rosbag2 bag: the embedded model scored against the recorded commands, with a
   halting sweep and a report.
3. The policy node (embedded model) on synthetic 224 px sensors: adaptive halting, then a
   recurrent-depth change at run time.
4. ActionChunks between two processes, validated against the ALOHA description (chunk_loopback).
Outputs go to build/demo/. Exit status is non-zero when any part fails to run (an episode the
policy does not solve is a result, not a failure).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from rd_vla_ros.cli import main as rd_vla
from rd_vla_ros.demos.closed_loop import run as run_closed_loop
from rd_vla_ros.demos.node_demo import run as run_node_demo
from rd_vla_ros.paths import embedded_checkpoint

COUNT = 10
EPISODES = [("transfer_cube", 1000), ("insertion", 1000)]  # evaluation seeds (1000+): never trained on
REPLAY_SEED = 1007


def section(title: str) -> None:
    sys.stdout.write(f"\n== rd_vla_ros demo {title}\n")
    sys.stdout.flush()


def main() -> int:
    workdir = Path("build") / "demo"
    workdir.mkdir(parents=True, exist_ok=True)
    checkpoint = embedded_checkpoint()
    section("1/4: closed loop over DDS, simulated ALOHA <-> rd_vla_node (embedded model, held-out seeds)")
    loop_rc, _ = run_closed_loop(str(checkpoint), EPISODES, workdir / "closed_loop", real_time_factor=0.5)
    sys.stdout.write("(one episode per task is one draw; the embedded model's success rates over 50 held-out seeds "
                     "per setting are in docs/sim.md, 'Results', made by tools/eval_embedded.sh)\n")  # fmt: skip
    section(
        f"2/4: offline replay of a recorded demonstration (rosbag2, held-out seed {REPLAY_SEED}), halting "
        "sweep and report"
    )
    replay_rc = run_replay_demo(workdir, checkpoint)
    section("3/4: rd_vla_node on synthetic sensors (embedded model): adaptive halting, then depth set at run time")
    node_rc = run_node_demo(checkpoint)
    section(f"4/4: {COUNT} ActionChunks from a talker process to an echo process")
    bindir = Path(sys.executable).parent
    echo = subprocess.Popen([str(bindir / "rd_vla_chunk_echo"), "--count", str(COUNT), "--timeout", "60"])
    talker = subprocess.run(
        [str(bindir / "rd_vla_chunk_talker"), "--count", str(COUNT), "--rate", "20"], timeout=120, check=False
    )
    echo_rc = echo.wait(timeout=120)
    ok = loop_rc == 0 and node_rc == 0 and replay_rc == 0 and talker.returncode == 0 and echo_rc == 0
    sys.stdout.write(f"\ndemo {'OK' if ok else 'FAILED'} (outputs in {workdir})\n")
    return 0 if ok else 1


def run_replay_demo(workdir: Path, checkpoint: Path) -> int:
    """Record a scripted TransferCube demonstration on a held-out seed (regenerated each run) and replay it."""
    from rd_vla_ros.sim.scripted import record_demo

    bag = workdir / "recording"
    if bag.exists():
        shutil.rmtree(bag)
    record_demo("transfer_cube", REPLAY_SEED, bag)
    sys.stdout.write(f"recorded the scripted TransferCube demonstration of held-out seed {REPLAY_SEED} into {bag}\n")
    return rd_vla(["replay", str(bag), "--checkpoint", str(checkpoint), "--out", str(workdir / "replay"),
                   "--thresholds", "1e-2,1e-3,1e-4", "--fixed-depths", "1,4,8,16", "--stride", "4",
                   "--quiet"])  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
