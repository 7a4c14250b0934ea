"""rd_vla_sim_bridge: the simulated ALOHA as a ROS 2 robot, for the unmodified policy node.

Publishes what a real ALOHA driver publishes: `cameras/<name>/image_raw` (sensor_msgs/Image rgb8),
`joint_states` (sensor_msgs/JointState), and `/clock` (the simulation's time: run the node with
use_sim_time). Executes `trajectory_msgs/JointTrajectory` commands on the arm topics the way
joint_trajectory_controller does: points are reached at header.stamp + time_from_start (stamp 0 =
now), a new trajectory replaces the old one from its start time, and the last point is held.

The simulation advances at `real_time_factor` times real time (0.25: four wall seconds per
simulated second), so the node's timing logic (input ages, re-plan cadence, inference latency
measured in simulated time) runs exactly as on hardware, only slower or faster. Each episode's
result (success both ways, max reward) is published as JSON on `~/episode_result` and logged. Each
episode starts like one on a robot after an operator's reset: the new scene at rest for
`reset_idle_steps` control periods, sensors and the task's instruction published, so the node's first
chunk is planned from the new scene and instruction (then commands received meanwhile are dropped).

    python -m rd_vla_ros.sim.bridge --episodes transfer_cube:1000 insertion:1000 --real-time-factor 0.25
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory

from rd_vla_ros.evaluation.commands import CommandTimeline
from rd_vla_ros.model.config import ALOHA_JOINTS
from rd_vla_ros.ros.cdr import image_cdr
from rd_vla_ros.ros.conversions import duration_to_s, ns_to_time, time_to_ns
from rd_vla_ros.sim.aloha import (
    CAMERA_RESOLUTION,
    CONTROL_PERIOD_S,
    EPISODE_STEPS,
    AlohaSim,
    parse_resolution,
    task_spec,
)

CAMERA_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
START_NS = 100_000_000_000  # simulated time starts at 100 s (a zero stamp means "unstamped" in ROS)


class TrajectoryExecutor:
    """joint_trajectory_controller semantics over a CommandTimeline, holding the last point."""

    def __init__(self, joint_names: list[str]) -> None:
        self.joint_names = list(joint_names)
        self.timeline = CommandTimeline(joint_names)
        self.hold = np.zeros(len(joint_names))
        self.accepted = 0
        self.rejected = 0

    def reset(self, positions: np.ndarray) -> None:
        self.timeline = CommandTimeline(self.joint_names)
        self.hold = np.asarray(positions, dtype=np.float64).copy()

    def command(self, msg: JointTrajectory, now_ns: int) -> str | None:
        """Accept a trajectory; returns why it was rejected, or None."""
        unknown = [j for j in msg.joint_names if j not in self.joint_names]
        if unknown or not msg.points:
            self.rejected += 1
            return f"unknown joints {unknown}" if unknown else "no points"
        points = [p for p in msg.points if len(p.positions) == len(msg.joint_names)]
        if len(points) != len(msg.points) or not all(np.isfinite(p.positions).all() for p in points):
            self.rejected += 1
            return "a point without a finite position per joint"
        start = time_to_ns(msg.header.stamp) or now_ns
        times = [start + round(duration_to_s(p.time_from_start) * 1e9) for p in points]
        self.timeline.add(list(msg.joint_names), times, np.array([list(p.positions) for p in points]))
        self.accepted += 1
        return None

    def target(self, t_ns: int) -> np.ndarray:
        """(J,) positions to reach at t_ns: interpolated, else the last point reached (held)."""
        values, valid = self.timeline.targets(np.array([t_ns]))
        last_t, last_v = self.timeline.last_points()  # (J,) each
        self.hold = np.where(valid[0], values[0], np.where((last_t >= 0) & (t_ns > last_t), last_v, self.hold))
        return self.hold.copy()


class SimBridge(Node):
    def __init__(
        self,
        episodes: list[tuple[str, int]],
        cameras: list[str],
        resolution: tuple[int, int] = CAMERA_RESOLUTION,
        real_time_factor: float = 0.25,
        steps: int = EPISODE_STEPS,
        camera_every: int = 1,
        reset_idle_steps: int = 25,
        arm_topics: tuple[str, str] = ("left_arm_controller/joint_trajectory", "right_arm_controller/joint_trajectory"),
        **kwargs: object,
    ) -> None:
        super().__init__("rd_vla_sim_bridge", **kwargs)
        if not real_time_factor > 0:
            raise ValueError(f"real_time_factor must be > 0, got {real_time_factor}")
        for task, _ in episodes:
            task_spec(task)  # unknown task names fail here, before anything runs
        self.episodes = list(episodes)
        self.cameras, self.resolution = list(cameras), resolution
        self.sims: dict[str, AlohaSim] = {}
        self.sim = self._sim(episodes[0][0])
        self.spec = self.sim.spec
        self.steps, self.rtf, self.camera_every = steps, real_time_factor, camera_every
        self.reset_idle_steps = reset_idle_steps
        self.frames: list[tuple[int, np.ndarray]] = []  # (time ns, first camera image), every keep_frame_every steps
        self.keep_frame_every = 0
        self.in_episode = False
        self.executor_ = TrajectoryExecutor(ALOHA_JOINTS)
        self._lock = threading.Lock()
        self.now_ns = START_NS
        self.clock_pub = self.create_publisher(Clock, "/clock", 10)
        self.image_pubs = {c: self.create_publisher(Image, f"cameras/{c}/image_raw", CAMERA_QOS) for c in cameras}
        self.joint_pub = self.create_publisher(JointState, "joint_states", 10)
        self.instruction_pub = self.create_publisher(String, "instruction", QoSProfile(depth=1))
        self.result_pub = self.create_publisher(String, "~/episode_result", 10)
        for topic in arm_topics:
            self.create_subscription(JointTrajectory, topic, self._on_trajectory, 10)
        self.results: list[dict] = []
        self.commands_received = 0

    def _sim(self, task: str) -> AlohaSim:
        if task not in self.sims:
            self.sims[task] = AlohaSim(task, self.cameras, self.resolution)
        return self.sims[task]

    def close(self) -> None:
        for sim in self.sims.values():
            sim.close()

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        with self._lock:
            why = self.executor_.command(msg, self.now_ns)
            self.commands_received += why is None
        if why:
            self.get_logger().warning(f"rejected trajectory: {why}", throttle_duration_sec=2.0)

    def _publish_sensors(self) -> None:
        t = self.now_ns
        self.clock_pub.publish(Clock(clock=ns_to_time(t)))
        if self.sim.step_count % self.camera_every == 0:
            w, h = self.resolution
            images = self.sim.images()
            for camera, img in images.items():
                self.image_pubs[camera].publish(image_cdr(t, camera, h, w, "rgb8", 3 * w, img.tobytes()))
            if self.in_episode and self.keep_frame_every and self.sim.step_count % self.keep_frame_every == 0:
                self.frames.append((t, images[self.cameras[0]]))
        state = JointState(name=list(ALOHA_JOINTS), position=self.sim.qpos().tolist())
        state.header.stamp = ns_to_time(t)
        self.joint_pub.publish(state)

    def idle(self, wall_s: float, until: Callable[[], bool] | None = None) -> None:
        """Publish sensors, the instruction and an advancing clock with the robot at rest (no physics
        step), e.g. while the node starts up; stops early when `until()` is true."""
        period_ns = round(CONTROL_PERIOD_S * 1e9)
        end = time.monotonic() + wall_s
        k = 0
        while time.monotonic() < end and not (until and until()):
            self._publish_sensors()
            if k % 25 == 0:
                self.instruction_pub.publish(String(data=self.spec.instruction))
            k += 1
            time.sleep(CONTROL_PERIOD_S / self.rtf)
            with self._lock:
                self.now_ns += period_ns

    def run_episode(self, task: str, seed: int) -> dict:
        self.sim = self._sim(task)
        self.spec = self.sim.spec
        self.sim.reset(seed)
        period_ns = round(CONTROL_PERIOD_S * 1e9)
        # The reset scene at rest, sensors published (as after an operator's reset): the node plans the
        # episode's first chunk from this scene, not from the end of the previous episode.
        self.idle(self.reset_idle_steps * CONTROL_PERIOD_S / self.rtf)
        with self._lock:
            self.executor_.reset(self.sim.qpos())
            accepted_before = self.executor_.accepted
        self.instruction_pub.publish(String(data=self.spec.instruction))
        wall0 = time.monotonic()
        self.in_episode = True
        for k in range(self.steps):
            self._publish_sensors()
            # pace: step k ends at wall0 + (k + 1) * period / rtf
            delay = wall0 + (k + 1) * CONTROL_PERIOD_S / self.rtf - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            with self._lock:
                target = self.executor_.target(self.now_ns + period_ns)
                self.now_ns += period_ns
            self.sim.step(target)
        self.in_episode = False
        outcome = self.sim.success()
        result = {"task": self.spec.name, "seed": seed, **outcome, "max_reward": max(self.sim.rewards),
                  "steps": self.steps, "commands": self.executor_.accepted - accepted_before,
                  "start_ns": self.now_ns - self.steps * period_ns, "end_ns": self.now_ns}  # fmt: skip
        self.results.append(result)
        self.result_pub.publish(String(data=json.dumps(result)))
        self.get_logger().info(f"episode: {result}")
        return result

    def run(self) -> list[dict]:
        for task, seed in self.episodes:
            self.run_episode(task, seed)
        return self.results


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", nargs="+", default=["transfer_cube:1000"], help="TASK:SEED ...")
    parser.add_argument("--cameras", nargs="+", default=["top"])
    parser.add_argument("--resolution", type=parse_resolution, default=CAMERA_RESOLUTION, metavar="WxH",
                        help="camera image size (default 160x120)")  # fmt: skip
    parser.add_argument("--real-time-factor", type=float, default=0.25)
    parser.add_argument("--steps", type=int, default=EPISODE_STEPS)
    parser.add_argument("--start-delay", type=float, default=2.0, help="wall seconds of idle sensors before starting")
    parser.add_argument("--results", type=Path, default=None, help="write the episode results here (JSON)")
    args = parser.parse_args(rclpy.utilities.remove_ros_args(argv)[1:])
    try:
        episodes = [(e.split(":")[0], int(e.split(":")[1])) for e in args.episodes]
    except (IndexError, ValueError):
        parser.error(f"--episodes takes TASK:SEED items, got {args.episodes}")
    rclpy.init(args=argv)
    bridge = SimBridge(episodes, args.cameras, args.resolution, args.real_time_factor, args.steps)
    executor = SingleThreadedExecutor()
    executor.add_node(bridge)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        bridge.sim.reset(episodes[0][1])
        bridge.idle(args.start_delay)  # let the node discover us and configure
        results = bridge.run()
        if args.results:
            args.results.write_text(json.dumps(results, indent=2) + "\n")
        sys.stdout.write(json.dumps(results) + "\n")
    except KeyboardInterrupt:
        return 130
    finally:
        executor.shutdown()
        bridge.close()
        bridge.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
