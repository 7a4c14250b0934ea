"""`make demo`: the package's main job on its embedded defaults.

Starts the ActionChunk echo and talker as two separate processes talking over DDS; the echo validates
every chunk against the ALOHA robot description (names, position and velocity limits, sequence) and
reports transport latency. Exit status is non-zero when anything was lost or invalid.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

COUNT = 20


def main() -> int:
    bindir = Path(sys.executable).parent
    sys.stdout.write(f"rd_vla_ros demo: {COUNT} ActionChunks from a talker process to an echo process over DDS\n")
    sys.stdout.flush()
    echo = subprocess.Popen([str(bindir / "rd_vla_chunk_echo"), "--count", str(COUNT), "--timeout", "60"])
    talker = subprocess.run(
        [str(bindir / "rd_vla_chunk_talker"), "--count", str(COUNT), "--rate", "10"], timeout=120, check=False
    )
    echo_rc = echo.wait(timeout=120)
    return 0 if talker.returncode == 0 and echo_rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
