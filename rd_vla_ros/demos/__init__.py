"""Small runnable demonstrations of the package over a real ROS graph."""
