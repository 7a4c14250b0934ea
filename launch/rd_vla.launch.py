"""Launch rd_vla_node with the shipped parameters and topic remaps.

    ros2 launch rd_vla_ros rd_vla.launch.py checkpoint:=/path/to/checkpoint

Thin and data-driven: `NODES`, `PARAMS_FILES` and `REMAPS` are read by the package's own tests and
tools (which start the same node with `python -m rd_vla_ros.ros.node --ros-args --params-file ...`).
"""

from __future__ import annotations

NODES = ["rd_vla_node"]
PARAMS_FILES = ["rd_vla_node.yaml"]  # in the package's config/
# ALOHA-style topics -> the node's parameter defaults
REMAPS = [
    ("joint_states", "/joint_states"),
    ("instruction", "/instruction"),
]


def generate_launch_description():
    from pathlib import Path

    from ament_index_python.packages import get_package_share_directory
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import LifecycleNode

    share = get_package_share_directory("rd_vla_ros")
    params = [str(Path(share) / "config" / f) for f in PARAMS_FILES]
    return LaunchDescription(
        [
            DeclareLaunchArgument("checkpoint", default_value="embedded"),
            DeclareLaunchArgument("autostart", default_value="true"),
            LifecycleNode(
                package="rd_vla_ros",
                executable="rd_vla_node",
                name="rd_vla_node",
                namespace="",
                parameters=[
                    *params,
                    {"checkpoint": LaunchConfiguration("checkpoint"), "autostart": LaunchConfiguration("autostart")},
                ],
                remappings=REMAPS,
                output="screen",
            ),
        ]
    )
