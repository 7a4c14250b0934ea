"""The control loop without ROS: observation assembly, the policy runner, the chunk type, re-plan
scheduling on an injected clock, chunk blending, the safety filter and the diagnostics values.
The ROS node, replay and the simulation are wiring around these modules; none of them imports rclpy."""
