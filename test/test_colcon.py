"""The package builds with colcon as a ROS 2 user would, and the installed copy works on its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from colcon_build import colcon_build, site_packages  # noqa: E402

pytestmark = pytest.mark.multiprocess


@pytest.fixture(scope="module")
def install_prefix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return colcon_build(tmp_path_factory.mktemp("colcon_ws"))


def installed_env(prefix: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(site_packages(prefix))
    env["AMENT_PREFIX_PATH"] = f"{prefix}{os.pathsep}{sys.prefix}"
    # The ROS 2 installation is this virtual environment: "activate" it as a user's shell would, so
    # the installed scripts' `#!/usr/bin/env python3` finds the interpreter that has rclpy.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_install_layout(install_prefix: Path) -> None:
    pkg = site_packages(install_prefix) / "rd_vla_ros"
    assert (pkg / "msg" / "_action_chunk.py").is_file()
    assert (pkg / "ros" / "conversions.py").is_file()
    assert (pkg / "weights" / "embedded" / "model.safetensors").is_file()  # the default model travels along
    assert "extend_path" in (pkg / "__init__.py").read_text(), "our __init__.py must replace rosidl's empty one"
    for exe in ("rd_vla_node", "rd_vla_chunk_talker", "rd_vla_chunk_echo", "rd_vla_sim_bridge"):
        assert os.access(install_prefix / "lib" / "rd_vla_ros" / exe, os.X_OK)  # `ros2 run rd_vla_ros <exe>`
    share = install_prefix / "share" / "rd_vla_ros"
    assert (share / "package.xml").is_file()
    assert (share / "config" / "aloha_bimanual.yaml").is_file()
    assert (share / "launch" / "chunk_loopback.launch.py").is_file()
    assert (install_prefix / "share" / "ament_index" / "resource_index" / "packages" / "rd_vla_ros").is_file()


def test_installed_package_imports_from_the_install_prefix(install_prefix: Path, tmp_path: Path) -> None:
    probe = (
        "import rd_vla_ros, rd_vla_ros.msg, rd_vla_ros.paths as p\n"
        "print(rd_vla_ros.__file__); print(rd_vla_ros.msg.__file__); print(p.config_path('aloha_bimanual.yaml'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=installed_env(install_prefix),
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert all(line.startswith(str(install_prefix)) for line in out), out


def test_installed_executable_talks_to_the_echo(install_prefix: Path, tmp_path: Path) -> None:
    env = installed_env(install_prefix)
    echo = subprocess.Popen(
        [str(install_prefix / "lib" / "rd_vla_ros" / "rd_vla_chunk_echo"), "--count", "3", "--timeout", "30"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    talker = subprocess.run(
        [str(install_prefix / "lib" / "rd_vla_ros" / "rd_vla_chunk_talker"), "--count", "3", "--rate", "20"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    out, _ = echo.communicate(timeout=60)
    assert talker.returncode == 0, talker.stderr
    assert echo.returncode == 0 and "received 3/3 chunks" in out, out
