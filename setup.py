"""Python packaging for rd_vla_ros.

The ROS 2 build (colcon / ament_cmake, see CMakeLists.txt) installs the package together with the
generated messages. This file serves the project's own set-up (`make setup`): an editable install
of the sources into the project's virtual environment, with the console commands below.
"""

from setuptools import find_packages, setup

setup(
    name="rd_vla_ros",
    version="0.1.0",
    description="Recurrent-Depth VLA policy for ROS 2",
    license="Apache-2.0",
    python_requires=">=3.11",
    packages=find_packages(include=["rd_vla_ros", "rd_vla_ros.*"]),
    package_data={"rd_vla_ros": ["weights/embedded/*"]},
    # Marks the package in the ament resource index, as ament_python packages do.
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/rd_vla_ros"]),
        ("share/rd_vla_ros", ["package.xml"]),
    ],
    entry_points={
        "console_scripts": [
            "rd_vla_node = rd_vla_ros.ros.node:main",
            "rd-vla = rd_vla_ros.cli:main",
            "rd_vla_chunk_talker = rd_vla_ros.demos.chunk_loopback:talker_main",
            "rd_vla_chunk_echo = rd_vla_ros.demos.chunk_loopback:echo_main",
            "rd_vla_sim_bridge = rd_vla_ros.sim.bridge:main",
        ],
    },
)
