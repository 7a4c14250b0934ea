"""Scripted bimanual demonstrations (no downloads), recorded as rosbag2 bags a real ALOHA would record.

The ACT recipe: both end effectors follow timed waypoints in gym-aloha's mocap scene; the joint
positions reached at every step (grippers taken from the gripper commands) become a joint-space
trajectory, which is then replayed open-loop in the joint-position scene and scored with gym-aloha's
reward. Successful episodes are written as bags:

    /cameras/<camera>/image_raw              sensor_msgs/Image rgb8, every control step
    /joint_states                            sensor_msgs/JointState (ALOHA joint names), every step
    /left_arm_controller/joint_trajectory    trajectory_msgs/JointTrajectory: the command sent at
    /right_arm_controller/joint_trajectory   each step (one point, reached one period later)
    /instruction                             std_msgs/String, once at the start

the topics of config/topic_map_aloha.yaml, so training reads simulated and real recordings alike.
Everything is a function of (task, seed): regenerate rather than store.
"""

from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from dm_control import mujoco
from gym_aloha.constants import ASSETS_DIR
from gym_aloha.tasks import sim_end_effector as ee_tasks
from rclpy.serialization import serialize_message
from sensor_msgs.msg import JointState
from std_msgs.msg import String

from rd_vla_ros.model.config import ALOHA_JOINTS
from rd_vla_ros.ros.bags import BagWriter
from rd_vla_ros.ros.cdr import image_cdr
from rd_vla_ros.ros.conversions import joint_trajectory, ns_to_time
from rd_vla_ros.sim.aloha import (
    CAMERA_RESOLUTION,
    CONTROL_PERIOD_S,
    EPISODE_STEPS,
    MAX_REWARD,
    AlohaSim,
    make_cheap,
    object_poses,
    task_spec,
)  # fmt: skip

START_NS = 1_700_000_000_000_000_000
COMMAND_TOPICS = ("/left_arm_controller/joint_trajectory", "/right_arm_controller/joint_trajectory")
# The shipped mocap weld is too soft under MuJoCo 3.8 (grippers lag 2-3 cm and miss): stiffen it.
WELD_SOLIMP = {"transfer_cube": (0.95, 0.99, 0.001), "insertion": (0.9, 0.95, 0.001)}
WELD_SOLREF = 0.005


# ------------------------------------------------------------------------------------ quaternions
def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of (w, x, y, z) quaternions."""
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return np.array([
        w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
        w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
        w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
        w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
    ])  # fmt: skip


def axis_angle(axis: tuple[float, float, float], degrees: float) -> np.ndarray:
    half = np.radians(degrees) / 2
    return np.array([np.cos(half), *(np.sin(half) * np.asarray(axis, dtype=np.float64))])


def at(p: np.ndarray, dx: float, dy: float, dz: float) -> np.ndarray:
    """p offset by (dx, dy, dz) metres."""
    return p + np.array([dx, dy, dz])


@dataclass
class Waypoint:
    t: int
    xyz: np.ndarray
    quat: np.ndarray
    gripper: float  # normalised: 0 closed, 1 open


def interpolate(waypoints: list[Waypoint], t: int) -> np.ndarray:
    """(8,) xyz, quat, gripper at step t (linear between the bracketing waypoints)."""
    for a, b in itertools.pairwise(waypoints):
        if a.t <= t <= b.t:
            f = (t - a.t) / (b.t - a.t)
            return np.concatenate([
                a.xyz + f * (b.xyz - a.xyz), a.quat + f * (b.quat - a.quat), [a.gripper + f * (b.gripper - a.gripper)]
            ])  # fmt: skip
    last = waypoints[-1]
    return np.concatenate([last.xyz, last.quat, [last.gripper]])


def waypoints(task: str, objects: np.ndarray, left0: np.ndarray, right0: np.ndarray) -> tuple[list, list]:
    """The scripted end-effector paths (left, right) for one episode (docs/sim.md gives the recipe)."""
    lq0, rq0 = left0[3:], right0[3:]
    # Grippers close and open within 10-15 steps (0.2-0.3 s) and the arms move on at once: a closed-loop
    # policy sees no progress while a gripper squeezes an object it already touches, so a long
    # closing ramp (ACT's 40-50 steps) is a stretch of identical observations whose labels change from
    # "wait" to "go": a policy with 8-row chunks learns to wait for ever there.
    if task == "transfer_cube":
        box = objects[:3]
        pick = quat_mul(rq0, axis_angle((0, 1, 0), -60))
        meet_left = axis_angle((1, 0, 0), 90)
        meet = np.array([0.0, 0.5, 0.25])
        left = [
            Waypoint(0, left0[:3], lq0, 0), Waypoint(100, at(meet, -0.1, 0, -0.02), meet_left, 1),
            Waypoint(215, at(meet, 0.02, 0, -0.02), meet_left, 1),
            Waypoint(225, at(meet, 0.02, 0, -0.02), meet_left, 0),
            Waypoint(235, at(meet, 0.02, 0, -0.02), meet_left, 0),
            Waypoint(275, at(meet, -0.1, 0, -0.02), np.array([1.0, 0, 0, 0]), 0),
            Waypoint(400, at(meet, -0.1, 0, -0.02), np.array([1.0, 0, 0, 0]), 0),
        ]  # fmt: skip
        right = [
            Waypoint(0, right0[:3], rq0, 0), Waypoint(90, at(box, 0, 0, 0.08), pick, 1),
            Waypoint(130, at(box, 0, 0, -0.015), pick, 1), Waypoint(140, at(box, 0, 0, -0.015), pick, 0),
            Waypoint(165, at(meet, 0.05, 0, 0), pick, 0), Waypoint(180, meet, pick, 0), Waypoint(225, meet, pick, 0),
            Waypoint(235, meet, pick, 1), Waypoint(275, at(meet, 0.1, 0, 0), pick, 1),
            Waypoint(400, at(meet, 0.1, 0, 0), pick, 1),
        ]  # fmt: skip
        return left, right
    peg, socket = objects[:3], objects[7:10]
    pick_right = quat_mul(rq0, axis_angle((0, 1, 0), -60))
    pick_left = quat_mul(lq0, axis_angle((0, 1, 0), 60))
    meet = np.array([0.0, 0.5, 0.15])
    lift = 0.00715  # the right arm carries the peg 7 mm higher
    left = [
        Waypoint(0, left0[:3], lq0, 0), Waypoint(120, at(socket, 0, 0, 0.08), pick_left, 1),
        Waypoint(170, at(socket, 0, 0, -0.03), pick_left, 1), Waypoint(185, at(socket, 0, 0, -0.03), pick_left, 0),
        Waypoint(255, at(meet, -0.1, 0, 0), pick_left, 0), Waypoint(310, at(meet, -0.05, 0, 0), pick_left, 0),
        Waypoint(400, at(meet, -0.05, 0, 0), pick_left, 0),
    ]  # fmt: skip
    right = [
        Waypoint(0, right0[:3], rq0, 0), Waypoint(120, at(peg, 0, 0, 0.08), pick_right, 1),
        Waypoint(170, at(peg, 0, 0, -0.03), pick_right, 1), Waypoint(185, at(peg, 0, 0, -0.03), pick_right, 0),
        Waypoint(255, at(meet, 0.1, 0, lift), pick_right, 0), Waypoint(310, at(meet, 0.05, 0, lift), pick_right, 0),
        Waypoint(400, at(meet, 0.05, 0, lift), pick_right, 0),
    ]  # fmt: skip
    return left, right


def start_mocap_poses(physics: mujoco.Physics) -> list[np.ndarray]:
    """(7,) xyz + quat per weld: where its mocap body must be for the weld to hold the gripper where it
    is now (body2 = body1 * relpose, so body1 = body2 * relpose^-1)."""
    poses = []
    for i in range(physics.model.neq):
        gripper = physics.model.eq_obj2id[i]
        rel_pos, rel_quat = physics.model.eq_data[i, 3:6], physics.model.eq_data[i, 6:10]
        quat = quat_mul(physics.data.xquat[gripper], rel_quat * np.array([1.0, -1.0, -1.0, -1.0]))
        pos = physics.data.xpos[gripper] - rotate(quat, rel_pos)
        poses.append(np.concatenate([pos, quat]))
    return poses


def rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """v rotated by the unit quaternion q (w, x, y, z)."""
    return quat_mul(quat_mul(q, np.concatenate([[0.0], v])), q * np.array([1.0, -1.0, -1.0, -1.0]))[1:]


def joint_trajectory_for(task: str, seed: int, steps: int = EPISODE_STEPS) -> np.ndarray:
    """Run the scripted end-effector policy in the mocap scene; returns (steps + 1, 14) joint targets
    (row 0 = the start pose; grippers = the normalised gripper commands)."""
    spec = task_spec(task)
    physics = mujoco.Physics.from_xml_path(str(ASSETS_DIR / spec.mocap_scene))
    make_cheap(physics)
    physics.model.eq_solimp[:, :3] = WELD_SOLIMP[task]
    physics.model.eq_solref[:, 0] = WELD_SOLREF
    ee = ee_tasks.TransferCubeEndEffectorTask() if task == "transfer_cube" else ee_tasks.InsertionEndEffectorTask()
    objects = object_poses(task, seed)
    with physics.reset_context():
        ee.initialize_robots(physics)
        physics.data.qpos[16:] = objects
    # the waypoints are defined relative to gym-aloha's reference mocap poses (ACT's numbers) ...
    left0 = np.concatenate([physics.data.mocap_pos[0], physics.data.mocap_quat[0]])
    right0 = np.concatenate([physics.data.mocap_pos[1], physics.data.mocap_quat[1]])
    left, right = waypoints(task, objects, left0, right0)
    # ... but under MuJoCo 3 the welds hold each gripper at an offset (eq_data's relpose) from its
    # mocap body, so those poses would snap the arms ~13 cm back at the first step: a jump that no
    # policy should learn. Start each path where the weld is satisfied at the start pose instead.
    for path, start in zip((left, right), start_mocap_poses(physics), strict=True):
        path[0] = Waypoint(0, start[:3], start[3:], path[0].gripper)
    substeps = round(CONTROL_PERIOD_S / physics.timestep())
    rows = [ee.get_qpos(physics)]
    for t in range(steps):
        action = np.concatenate([interpolate(left, t), interpolate(right, t)])  # (16,)
        ee.before_step(action, physics)
        for _ in range(substeps):
            physics.step()
        q = ee.get_qpos(physics)
        q[6], q[13] = action[7], action[15]  # grippers: the commanded (normalised) opening
        rows.append(q)
    return np.array(rows)  # (steps + 1, 14)


@dataclass(frozen=True)
class Disturbance:
    """DART-style noise (Laskey et al. 2017) between the scripted command and the arms.

    The arms execute `command + noise`, while the bag records the scripted command itself on the
    controller topics: from the disturbed states it causes, the recorded label is the expert's way
    back to its trajectory, which is what a policy needs to learn to recover from its own errors.

    Attributes:
        std: each episode draws its amplitude uniformly from [0, std] (rad, every arm joint; the
            grippers are not disturbed), so the data spans clean to fully disturbed episodes.
        time_constant_s: correlation time of the noise (an Ornstein-Uhlenbeck process): slow enough
            that the arms really leave the trajectory, which white noise at 50 Hz would not do.
    """

    std: float
    time_constant_s: float = 0.3

    def __post_init__(self) -> None:
        if not (np.isfinite(self.std) and self.std >= 0):
            raise ValueError(f"Disturbance.std must be finite and >= 0, got {self.std}")
        if not (np.isfinite(self.time_constant_s) and self.time_constant_s > 0):
            raise ValueError(f"Disturbance.time_constant_s must be finite and > 0, got {self.time_constant_s}")

    def amplitude(self, seed: int) -> float:
        """The episode's noise std (rad), drawn from [0, std]."""
        return float(np.random.default_rng([seed, 0xDA27]).uniform(0.0, self.std))

    def sample(self, seed: int, steps: int) -> np.ndarray:
        """(steps, 14) noise for an episode, a function of the seed; zero on the gripper columns."""
        amplitude = self.amplitude(seed)
        rng = np.random.default_rng([seed, 0xDA28])
        decay = np.exp(-CONTROL_PERIOD_S / self.time_constant_s)
        noise = np.zeros((steps, 14))
        x = rng.normal(0.0, amplitude, 14)
        for t in range(steps):
            noise[t] = x
            x = decay * x + np.sqrt(1 - decay**2) * rng.normal(0.0, amplitude, 14)
        noise[:, [6, 13]] = 0.0
        return noise


@dataclass
class Demonstration:
    task: str
    seed: int
    success: dict[str, bool]
    steps: int
    disturbance_std: float = 0.0
    steps_at_max: int = 0  # control steps at reward MAX_REWARD (Insertion's expert: 1-2, then off the pin)


def record_demo(
    task: str,
    seed: int,
    out: Path | None,
    cameras: tuple[str, ...] = ("top",),
    resolution: tuple[int, int] = CAMERA_RESOLUTION,
    storage: str = "mcap",
    disturbance: Disturbance | None = None,
) -> Demonstration:
    """Replay the scripted joint trajectory in the joint-position scene; write the bag when `out` is given.
    With a disturbance the arms execute the command plus its noise; the bag records the command."""
    spec = task_spec(task)
    targets = joint_trajectory_for(task, seed)  # (401, 14)
    noise = disturbance.sample(seed, EPISODE_STEPS) if disturbance is not None else np.zeros((EPISODE_STEPS, 14))
    sim = AlohaSim(task, cameras, resolution)
    sim.reset(seed)
    period_ns = round(CONTROL_PERIOD_S * 1e9)
    writer = BagWriter(out, storage) if out is not None else None
    try:
        if writer is not None:
            writer.__enter__()
            writer.write(
                "/instruction", "std_msgs/msg/String", START_NS, serialize_message(String(data=spec.instruction))
            )
        for step in range(EPISODE_STEPS):
            t_ns = START_NS + step * period_ns
            action = targets[step + 1]  # reached one period from now
            if writer is not None:
                _write_step(writer, sim, t_ns, action, period_ns)
            sim.step(action + noise[step])
    finally:
        if writer is not None:
            writer.__exit__(None, None, None)
        sim.close()
    result = Demonstration(
        task,
        seed,
        sim.success(),
        EPISODE_STEPS,
        disturbance.amplitude(seed) if disturbance else 0.0,
        sum(r == MAX_REWARD for r in sim.rewards),
    )
    if out is not None:
        (Path(out) / "episode.json").write_text(json.dumps(result.__dict__) + "\n")
    return result


def kept_demo(demo: Demonstration) -> bool:
    """A demonstration worth learning from: gym-aloha's success, and for TransferCube also the cube
    still held at the end (its "reached 4" can be met by a brush of the cube)."""
    return demo.success["reached"] and (demo.task != "transfer_cube" or demo.success["final"])


def record_demos(
    out: Path,
    tasks: Sequence[str],
    episodes: int,
    first_seed: int,
    cameras: tuple[str, ...] = ("top",),
    resolution: tuple[int, int] = CAMERA_RESOLUTION,
    storage: str = "mcap",
    disturbance: Disturbance | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, int]:
    """Record `episodes` kept demonstrations per task into out/<task>_<seed>/, from `first_seed` on,
    skipping seeds whose scripted demonstration fails; bags already there are kept (a run resumes).
    Returns task -> the seed after the last one tried."""
    out.mkdir(parents=True, exist_ok=True)
    next_seed: dict[str, int] = {}
    for task in tasks:
        kept, seed = 0, first_seed
        while kept < episodes:
            path = out / f"{task}_{seed:04d}"
            if (path / "episode.json").is_file():
                kept += 1
            else:
                if path.exists():  # an interrupted recording
                    shutil.rmtree(path)
                # physics alone first (deterministic, ~10x cheaper than rendering): only successes are recorded
                if kept_demo(record_demo(task, seed, None, disturbance=disturbance)):
                    record_demo(task, seed, path, cameras, resolution, storage, disturbance)
                    kept += 1
                else:
                    log(f"{task} seed {seed}: the scripted demonstration failed, skipped")
            seed += 1
        next_seed[task] = seed
        log(f"{task}: {kept} demonstrations in {out}")
    return next_seed


def _write_step(writer: BagWriter, sim: AlohaSim, t_ns: int, action: np.ndarray, period_ns: int) -> None:
    w, h = sim.width, sim.height
    for camera, img in sim.images().items():
        data = image_cdr(t_ns, camera, h, w, "rgb8", 3 * w, img.tobytes())
        writer.write(f"/cameras/{camera}/image_raw", "sensor_msgs/msg/Image", t_ns, data)
    state = JointState(name=list(ALOHA_JOINTS), position=sim.qpos().tolist())
    state.header.stamp = ns_to_time(t_ns)
    writer.write("/joint_states", "sensor_msgs/msg/JointState", t_ns, serialize_message(state))
    for arm, topic in enumerate(COMMAND_TOPICS):
        cols = slice(7 * arm, 7 * arm + 7)
        msg = joint_trajectory(ALOHA_JOINTS[cols], action[None, cols], t_ns, period_ns / 1e9)
        writer.write(topic, "trajectory_msgs/msg/JointTrajectory", t_ns, serialize_message(msg))
