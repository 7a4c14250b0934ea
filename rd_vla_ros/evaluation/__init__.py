"""Offline evaluation of action chunks against recorded commands (no ROS types)."""
