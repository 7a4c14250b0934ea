"""Launch the ActionChunk loopback demo: a talker and an echo in two processes.

    ros2 launch rd_vla_ros chunk_loopback.launch.py count:=20

Thin and data-driven (see docs/launch.md): the node list is `NODES`, which the package's own tests
check without the ROS 2 `launch` packages installed.
"""

from __future__ import annotations

# Executables installed in lib/rd_vla_ros; each receives `--count <count>`.
NODES = ["rd_vla_chunk_echo", "rd_vla_chunk_talker"]


def generate_launch_description():
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    count = LaunchConfiguration("count")
    nodes = [
        Node(package="rd_vla_ros", executable=exe, name=exe, arguments=["--count", count], output="screen")
        for exe in NODES
    ]
    return LaunchDescription([DeclareLaunchArgument("count", default_value="10"), *nodes])
