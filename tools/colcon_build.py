"""Build rd_vla_ros with colcon in a workspace, the way a ROS 2 user would.

    python tools/colcon_build.py WORKSPACE

Creates WORKSPACE/src/rd_vla_ros (a symlink to this checkout) and runs `colcon build` against the
ROS 2 installation in this virtual environment (the PyPI wheels), installing to WORKSPACE/install.
Prints the install prefix of the package on success.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def colcon_build(workspace: Path) -> Path:
    workspace = workspace.resolve()
    src = workspace / "src"
    src.mkdir(parents=True, exist_ok=True)
    link = src / "rd_vla_ros"
    if not link.exists():
        link.symlink_to(ROOT, target_is_directory=True)
    prefix = Path(sys.prefix)
    env = dict(os.environ)
    env["AMENT_PREFIX_PATH"] = str(prefix)
    env["CMAKE_PREFIX_PATH"] = str(prefix)
    cmd = [
        sys.executable, "-m", "colcon", "build",
        "--base-paths", str(src),
        "--build-base", str(workspace / "build"),
        "--install-base", str(workspace / "install"),
        "--event-handlers", "console_direct-",
        "--cmake-args", "-G", "Ninja", f"-DPython3_EXECUTABLE={sys.executable}", "-DBUILD_TESTING=OFF",
    ]  # fmt: skip
    log = workspace / "colcon_build.log"
    with open(log, "w", encoding="utf-8") as out:
        result = subprocess.run(cmd, cwd=workspace, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"colcon build failed ({result.returncode}); see {log}:\n{log.read_text()[-3000:]}")
    return workspace / "install" / "rd_vla_ros"


def site_packages(install_prefix: Path) -> Path:
    """Where colcon put the Python package inside the package's install prefix."""
    rel = Path(sysconfig.get_path("purelib")).relative_to(sys.prefix)
    return install_prefix / rel


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write(__doc__ or "")
        return 2
    try:
        prefix = colcon_build(Path(argv[1]))
    except RuntimeError as err:
        sys.stderr.write(f"{err}\n")
        return 1
    sys.stdout.write(f"colcon: rd_vla_ros installed in {prefix}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
