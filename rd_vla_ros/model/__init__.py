"""The RD-VLA model: backbone, recurrent-depth action head, halting, horizon, training.

Nothing under this package imports rclpy or any ROS message type.
"""
