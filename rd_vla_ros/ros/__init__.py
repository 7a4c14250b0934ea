"""The ROS side: conversions between ROS messages and the model's arrays, nodes, bag tools.

Modules here may import rclpy and message types; rd_vla_ros.model never does.
"""
