"""Pure conversions between ROS messages and plain arrays (no node, no executor needed)."""

from __future__ import annotations

import math

import numpy as np
from builtin_interfaces.msg import Duration, Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from rd_vla_ros.msg import ActionChunk
from rd_vla_ros.robot import RobotDescription
from rd_vla_ros.runtime.chunk import ActionChunkData
from rd_vla_ros.runtime.stats import DiagnosticGroup

_NS_PER_S = 1_000_000_000
MAX_TIME_NS = (2**31 - 1) * _NS_PER_S + _NS_PER_S - 1  # builtin_interfaces/Time.sec is an int32


def time_to_ns(stamp: Time) -> int:
    return int(stamp.sec) * _NS_PER_S + int(stamp.nanosec)


def ns_to_time(ns: int) -> Time:
    if not 0 <= ns <= MAX_TIME_NS:
        raise ValueError(f"a ROS Time must be in [0, {MAX_TIME_NS}] ns (int32 seconds), got {ns} ns")
    sec, nanosec = divmod(int(ns), _NS_PER_S)
    return Time(sec=sec, nanosec=nanosec)


def duration_to_s(d: Duration) -> float:
    return int(d.sec) + int(d.nanosec) / _NS_PER_S


def s_to_duration(seconds: float) -> Duration:
    if not math.isfinite(seconds):
        raise ValueError(f"duration must be finite, got {seconds}")
    ns = round(seconds * _NS_PER_S)
    sec, nanosec = divmod(ns, _NS_PER_S)  # floor division keeps nanosec in [0, 1e9) for negatives
    return Duration(sec=sec, nanosec=nanosec)


def action_chunk_to_msg(chunk: ActionChunkData) -> ActionChunk:
    """Build an `ActionChunk` message (positions flattened row-major)."""
    msg = ActionChunk()
    msg.header.stamp = ns_to_time(chunk.stamp_ns)
    msg.sequence = int(chunk.sequence)
    msg.joint_names = list(chunk.joint_names)
    msg.chunk_length = chunk.chunk_length
    msg.execution_horizon = int(chunk.execution_horizon)
    msg.control_period = s_to_duration(chunk.control_period_s)
    msg.positions = np.ascontiguousarray(chunk.positions, dtype=np.float64).reshape(-1)
    msg.iterations = int(chunk.iterations)
    msg.min_iterations = int(chunk.min_iterations)
    msg.max_iterations = int(chunk.max_iterations)
    msg.converged = bool(chunk.converged)
    msg.halting_strategy = chunk.halting_strategy
    msg.halting_threshold = float(chunk.halting_threshold)
    msg.halting_residual = float(chunk.halting_residual)
    msg.residual_trace = np.asarray(chunk.residual_trace, dtype=np.float64)
    msg.backbone_latency = float(chunk.backbone_latency_s)
    msg.head_latency = float(chunk.head_latency_s)
    msg.inference_latency = float(chunk.inference_latency_s)
    msg.observation_age = float(chunk.observation_age_s)
    msg.input_names = list(chunk.input_stamps)
    msg.input_stamps = [ns_to_time(t) for t in chunk.input_stamps.values()]
    return msg


def action_chunk_from_msg(msg: ActionChunk) -> ActionChunkData:
    """Read an `ActionChunk` back into arrays; raises ValueError when its sizes are inconsistent."""
    h, j = int(msg.chunk_length), len(msg.joint_names)
    if len(msg.input_names) != len(msg.input_stamps):
        raise ValueError(f"ActionChunk has {len(msg.input_names)} input_names but {len(msg.input_stamps)} input_stamps")
    flat = np.asarray(msg.positions, dtype=np.float64)
    if flat.size != h * j:
        raise ValueError(f"ActionChunk has {flat.size} positions, expected chunk_length*joints = {h}*{j}")
    return ActionChunkData(
        positions=flat.reshape(h, j),
        joint_names=list(msg.joint_names),
        execution_horizon=int(msg.execution_horizon),
        control_period_s=duration_to_s(msg.control_period),
        stamp_ns=time_to_ns(msg.header.stamp),
        sequence=int(msg.sequence),
        iterations=int(msg.iterations),
        min_iterations=int(msg.min_iterations),
        max_iterations=int(msg.max_iterations),
        converged=bool(msg.converged),
        halting_strategy=str(msg.halting_strategy),
        halting_threshold=float(msg.halting_threshold),
        halting_residual=float(msg.halting_residual),
        residual_trace=np.asarray(msg.residual_trace, dtype=np.float64),
        backbone_latency_s=float(msg.backbone_latency),
        head_latency_s=float(msg.head_latency),
        inference_latency_s=float(msg.inference_latency),
        observation_age_s=float(msg.observation_age),
        input_stamps={str(n): time_to_ns(t) for n, t in zip(msg.input_names, msg.input_stamps, strict=True)},
    )


def joint_trajectory(joint_names: list[str], rows: np.ndarray, stamp_ns: int, period_s: float) -> JointTrajectory:
    """A JointTrajectory as joint_trajectory_controller expects it.

    rows (N, J): point i is reached at header.stamp + (i + 1) * period (strictly increasing), so the
    controller can drop points already in the past when the message arrives late. stamp_ns = 0 means
    "start now" for the controller.
    """
    msg = JointTrajectory()
    msg.header.stamp = ns_to_time(stamp_ns)
    msg.joint_names = list(joint_names)
    for i, row in enumerate(np.asarray(rows, dtype=np.float64)):
        point = JointTrajectoryPoint()
        point.positions = row.tolist()
        point.time_from_start = s_to_duration((i + 1) * period_s)
        msg.points.append(point)
    return msg


def arm_trajectories(
    robot: RobotDescription, rows: np.ndarray, stamp_ns: int, period_s: float, separate_grippers: bool
) -> list[tuple[JointTrajectory, JointTrajectory | None]]:
    """(R, J) rows in the robot's joint order -> per arm: its trajectory (arm joints, plus the gripper
    unless `separate_grippers`) and the gripper's own trajectory (None when not separate or no gripper)."""
    names = robot.joint_names
    out: list[tuple[JointTrajectory, JointTrajectory | None]] = []
    for arm in robot.arms:
        joints = list(arm.joints) if separate_grippers else list(arm.joint_names)
        arm_msg = joint_trajectory(joints, rows[:, [names.index(j) for j in joints]], stamp_ns, period_s)
        gripper_msg = None
        if separate_grippers and arm.gripper:
            gripper_msg = joint_trajectory([arm.gripper], rows[:, [names.index(arm.gripper)]], stamp_ns, period_s)
        out.append((arm_msg, gripper_msg))
    return out


def diagnostic_array(groups: list[DiagnosticGroup], stamp: Time, node_name: str) -> DiagnosticArray:
    """The node's diagnostic groups as one DiagnosticArray (status names prefixed by the node's name)."""
    array = DiagnosticArray()
    array.header.stamp = stamp
    array.status = [
        DiagnosticStatus(level=DiagnosticStatus.WARN if g.warn else DiagnosticStatus.OK,
                         name=f"{node_name}: {g.name}", message=g.message, hardware_id="rd_vla",
                         values=[KeyValue(key=k, value=v) for k, v in g.values])
        for g in groups
    ]  # fmt: skip
    return array
