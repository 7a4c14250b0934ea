"""The package as a ROS 2 package: manifest, launch files, config files, lint, layering."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from catkin_pkg.package import parse_package

ROOT = Path(__file__).resolve().parents[1]
PY_SOURCES = sorted(p for d in ("rd_vla_ros", "launch", "scripts", "tools") for p in (ROOT / d).rglob("*.py"))

# ROS packages a module may import, mapped to the package.xml name that provides them.
ROS_IMPORTS = {
    "rclpy": "rclpy",
    "builtin_interfaces": "builtin_interfaces",
    "std_msgs": "std_msgs",
    "sensor_msgs": "sensor_msgs",
    "trajectory_msgs": "trajectory_msgs",
    "diagnostic_msgs": "diagnostic_msgs",
    "lifecycle_msgs": "lifecycle_msgs",
    "rcl_interfaces": "rcl_interfaces",
    "std_srvs": "std_srvs",
    "rosgraph_msgs": "rosgraph_msgs",
    "ament_index_python": "ament_index_python",
    "urdf_parser_py": "urdfdom_py",
    "launch": "launch",
    "launch_ros": "launch_ros",
}


def imported_top_level(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_package_xml_is_valid_format_3() -> None:
    package = parse_package(str(ROOT / "package.xml"))  # raises on schema violations
    package.validate()
    assert package.package_format == 3
    assert package.name == "rd_vla_ros"
    assert any(e.tagname == "build_type" and e.content == "ament_cmake" for e in package.exports)
    assert "rosidl_interface_packages" in [g.name for g in package.member_of_groups]


def test_package_xml_declares_every_ros_package_the_code_imports() -> None:
    package = parse_package(str(ROOT / "package.xml"))
    declared = {d.name for d in package.build_depends + package.exec_depends + package.buildtool_depends}
    declared |= {d.name for d in package.test_depends}
    used = {ROS_IMPORTS[m] for p in PY_SOURCES for m in imported_top_level(p) if m in ROS_IMPORTS}
    # message dependencies: msg/*.msg fields such as "std_msgs/Header header"
    for msg in (ROOT / "msg").glob("*.msg"):
        for line in msg.read_text().splitlines():
            field_type = line.split("#")[0].strip().split(" ")[0]
            if "/" in field_type:
                used.add(field_type.split("/")[0])
    missing = used - declared
    assert not missing, f"imported but not declared in package.xml: {sorted(missing)}"
    # and nothing declared as a run dependency that the code never uses
    runtime_ros = {d.name for d in package.exec_depends} & set(ROS_IMPORTS.values())
    unused = runtime_ros - used
    assert not unused, f"declared in package.xml but never imported: {sorted(unused)}"


def test_version_is_consistent() -> None:
    import rd_vla_ros

    assert parse_package(str(ROOT / "package.xml")).version == rd_vla_ros.__version__
    assert f'version="{rd_vla_ros.__version__}"' in (ROOT / "setup.py").read_text()


@pytest.mark.parametrize("path", sorted((ROOT / "launch").glob("*.launch.py")), ids=lambda p: p.name)
def test_launch_files_compile_and_name_installed_executables(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    code = compile(source, str(path), "exec")
    namespace: dict[str, object] = {"__name__": "launch_file"}
    exec(code, namespace)  # defining the module must not need the launch packages
    assert callable(namespace["generate_launch_description"])
    cmake = (ROOT / "CMakeLists.txt").read_text()
    nodes = namespace.get("NODES", [])
    assert nodes, "launch files list their executables in NODES"
    for exe in nodes:
        assert (ROOT / "scripts" / exe).is_file(), f"{path.name}: no scripts/{exe}"
        assert f"scripts/{exe}" in cmake, f"{path.name}: scripts/{exe} is not installed by CMakeLists.txt"


@pytest.mark.parametrize("path", sorted((ROOT / "config").glob("*.yaml")), ids=lambda p: p.name)
def test_config_yaml_parses(path: Path) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and data


def test_installed_scripts_are_executable_and_import_existing_entry_points() -> None:
    for script in (ROOT / "scripts").iterdir():
        assert os.access(script, os.X_OK), script
        tree = ast.parse(script.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rd_vla_ros"):
                module = __import__(node.module, fromlist=[a.name for a in node.names])
                for alias in node.names:
                    assert hasattr(module, alias.name), f"{script.name}: {node.module}.{alias.name} missing"


def test_model_code_never_imports_rclpy() -> None:
    """model/, runtime/, evaluation/ and train/ run without ROS: importing them pulls in no rclpy and no messages."""
    modules = [
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for package in ("model", "runtime", "evaluation", "train")
        for p in sorted((ROOT / "rd_vla_ros" / package).rglob("*.py"))
    ]
    modules = [m.removesuffix(".__init__") for m in modules] + ["rd_vla_ros.robot"]
    probe = "import sys, importlib\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules)
    probe += (
        "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'rclpy' or m.startswith('rd_vla_ros.msg')"
        " or m.split('.')[0].endswith('_msgs'))\n"
    )
    probe += "print(bad); sys.exit(1 if bad else 0)\n"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=False)
    assert result.returncode == 0, f"model code pulled in ROS modules: {result.stdout}{result.stderr}"


def test_no_module_imports_a_private_name_of_another() -> None:
    """A leading underscore is a module's own business: neither the package, its tests, benchmarks nor
    tools import one from rd_vla_ros (a name others need is made public where it lives)."""
    found = []
    for folder in ("rd_vla_ros", "test", "benchmarks", "tools", "launch"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rd_vla_ros"):
                    found += [f"{path.relative_to(ROOT)}:{node.lineno} {node.module}.{a.name}"
                              for a in node.names if a.name.startswith("_")]  # fmt: skip
    assert found == [], found


def _self_attributes(path: Path) -> set[str]:
    """Names assigned as `self.NAME = ...` (or annotated) anywhere in a source file."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        for target in targets:
            if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self":
                names.add(target.attr)
    return names


def test_our_nodes_never_reuse_an_attribute_name_of_rclpy() -> None:
    """rclpy's Node keeps its entities in plain attributes (_subscriptions, _timers, ...): a subclass
    assigning one of those names silently hides entities from the executor (it happened twice)."""
    import rclpy

    base = Path(rclpy.__file__).parent
    theirs = set().union(*(_self_attributes(base / f) for f in ("node.py", "lifecycle/node.py",
                                                                  "lifecycle/managed_entity.py")))  # fmt: skip
    ours = {p: _self_attributes(ROOT / p) for p in ("rd_vla_ros/ros/node.py", "rd_vla_ros/ros/lifecycle.py",
                                                    "rd_vla_ros/sim/bridge.py")}  # fmt: skip
    clashes = {p: sorted(names & theirs) for p, names in ours.items() if names & theirs}
    assert clashes == {}, clashes
    assert {"_subscriptions", "_timers", "_publishers"} <= theirs  # the scan reads rclpy's assignments


def test_the_command_line_builds_without_the_heavy_libraries() -> None:
    """`rd-vla --help` and every command's options load no transformers, MuJoCo or rclpy: each command
    imports what it needs when it runs."""
    probe = (
        "import sys; from rd_vla_ros.cli import parser; parser()\n"
        "heavy = ('transformers', 'onnxruntime', 'mujoco', 'dm_control', 'rclpy')\n"
        "heavy = sorted(m for m in heavy if m in sys.modules)\n"
        "print(heavy); sys.exit(1 if heavy else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=False)
    assert result.returncode == 0, f"building the rd-vla parser loaded {result.stdout}{result.stderr}"


def test_ruff_lint_and_format() -> None:
    check = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    fmt = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "."], cwd=ROOT, capture_output=True, text=True
    )
    assert fmt.returncode == 0, "run `.venv/bin/ruff format .`:\n" + fmt.stdout + fmt.stderr


def test_the_node_imports_no_heavy_library_before_a_checkpoint_needs_it() -> None:
    """transformers (the backbone) and onnxruntime load on configure, not when the node process starts:
    its parameters and lifecycle services are up in about a second instead of several."""
    probe = (
        "import sys; import rd_vla_ros.ros.node\n"
        "heavy = sorted(m for m in ('transformers', 'onnxruntime', 'mujoco') if m in sys.modules)\n"
        "print(heavy); sys.exit(1 if heavy else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=False)
    assert result.returncode == 0, f"importing the node loaded {result.stdout}{result.stderr}"
