"""rd_vla_ros: a Recurrent-Depth Vision-Language-Action policy for ROS 2.

Layout:
    rd_vla_ros.model   the RD-VLA model, halting, horizon, training (pure torch; never imports rclpy)
    rd_vla_ros.ros     conversions between ROS messages and the model's arrays (imports ROS types)
    rd_vla_ros.msg     the generated interfaces (ActionChunk), built from msg/ by CMake
"""

from pkgutil import extend_path

# The generated message module (rd_vla_ros.msg) is installed by CMake into the environment's
# site-packages, while the Python sources may be used from a source checkout (editable install).
# Extending __path__ merges both directories into one package.
__path__ = extend_path(__path__, __name__)

__version__ = "0.1.0"
