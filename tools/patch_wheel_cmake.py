"""Point the CMake exports of the ROS 2 PyPI wheels at this interpreter.

The `ros-*` wheels are built on a manylinux image and their exported CMake files hard-code that
image's Python and NumPy include directories (``/opt/python/cp311-cp311/...``). Generating
interfaces (``rosidl_generate_interfaces``) against them fails until those paths name this
interpreter's include directories. Idempotent: files already patched are left untouched.

Usage: python tools/patch_wheel_cmake.py <prefix>   (the virtual environment's prefix)
"""

from __future__ import annotations

import re
import sys
import sysconfig
from pathlib import Path

import numpy

# The builder's include dirs, e.g. "/opt/python/cp311-cp311/include/python3.11" and
# ".../site-packages/numpy/_core/include".
_PY_INCLUDE = re.compile(r"/opt/python/cp3\d+-cp3\d+/include/python3\.\d+")
_NP_INCLUDE = re.compile(r"/opt/python/cp3\d+-cp3\d+/lib/python3\.\d+/site-packages/numpy/_core/include")


def patch(prefix: Path) -> int:
    """Rewrite every ``*.cmake`` under ``<prefix>/share``; return the number of files changed."""
    py_include = sysconfig.get_paths()["include"]
    np_include = numpy.get_include()
    changed = 0
    for path in sorted((prefix / "share").rglob("*.cmake")):
        text = path.read_text(encoding="utf-8")
        if "/opt/python/" not in text:
            continue
        new = _NP_INCLUDE.sub(np_include, text)
        new = _PY_INCLUDE.sub(py_include, new)
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed += 1
    return changed


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write(__doc__ or "")
        return 2
    prefix = Path(argv[1]).resolve()
    if not (prefix / "share").is_dir():
        sys.stderr.write(f"patch_wheel_cmake: {prefix}/share does not exist\n")
        return 1
    changed = patch(prefix)
    sys.stdout.write(f"patch_wheel_cmake: {changed} CMake file(s) re-pointed at {sysconfig.get_paths()['include']}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
