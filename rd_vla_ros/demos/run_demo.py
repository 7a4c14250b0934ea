"""`make demo`: the package's main job on its defaults.

1. The policy node end to end (rd_vla_ros.demos.node_demo): its own process, synthetic cameras and
   joint states at 30 Hz over DDS, an untrained tiny checkpoint, a depth change at run time.
2. ActionChunks between two processes, validated against the ALOHA description (chunk_loopback).
Exit status is non-zero when either fails.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from rd_vla_ros.demos.node_demo import run as run_node_demo

COUNT = 10


def main() -> int:
    workdir = Path("build") / "demo"
    workdir.mkdir(parents=True, exist_ok=True)
    sys.stdout.write("== rd_vla_ros demo 1/2: rd_vla_node over DDS (untrained tiny model, synthetic sensors)\n")
    sys.stdout.flush()
    node_rc = run_node_demo(workdir)
    sys.stdout.write(f"\n== rd_vla_ros demo 2/2: {COUNT} ActionChunks from a talker process to an echo process\n")
    sys.stdout.flush()
    bindir = Path(sys.executable).parent
    echo = subprocess.Popen([str(bindir / "rd_vla_chunk_echo"), "--count", str(COUNT), "--timeout", "60"])
    talker = subprocess.run(
        [str(bindir / "rd_vla_chunk_talker"), "--count", str(COUNT), "--rate", "20"], timeout=120, check=False
    )
    echo_rc = echo.wait(timeout=120)
    ok = node_rc == 0 and talker.returncode == 0 and echo_rc == 0
    sys.stdout.write(f"\ndemo {'OK' if ok else 'FAILED'}\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
