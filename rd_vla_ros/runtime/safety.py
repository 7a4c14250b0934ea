"""Command limits applied to every chunk before it can move a robot.

Row i of a chunk is the target for time t_obs + (i + 1) * dt. Targets are clamped to the joint
position limits, then to the commanded velocity limit: |q_i - q_{i-1}| <= v_max * dt, where q_{-1} is
the reference: the target the robot is being commanded towards at t_obs (the row of the previous
chunk due then), or the measured position when nothing was commanded recently.

The reference is the previous *command*, not the measured position: a position-controlled joint
lags its command (gravity, a gripper squeezing an object it holds), and limiting each new command
to a step from the measured position would take that lag away: a gripper could never squeeze, an
arm would sag. The velocity limit bounds how fast the commanded trajectory moves, as
joint_trajectory_controller's limits do. Unless the robot is far from that command (more than
`max_tracking_error` on some arm joint: it was moved by hand, reset, or blocked; a gripper squeezing
an object is far from its command by design and is not checked): then the command is
stale and row 0 starts from the measured position, or the arm would be pulled back towards it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from rd_vla_ros.robot import RobotDescription


@dataclass(frozen=True)
class ClampReport:
    position_clamps: int  # targets moved inside the position limits
    velocity_clamps: int  # targets moved to respect the velocity limits
    tracking_reset: bool = False  # the robot was far from the last command: row 0 started from the measured

    @property
    def total(self) -> int:
        return self.position_clamps + self.velocity_clamps


def command_reference(
    previous: np.ndarray | None, previous_stamp_ns: int, period_s: float, stamp_ns: int, measured: np.ndarray
) -> np.ndarray:
    """The target being commanded at `stamp_ns`: row i of the previous executed rows (reached at
    previous_stamp + (i + 1) * period, held after the last one), or `measured` when there is none or
    it starts after `stamp_ns`."""
    if previous is None or len(previous) == 0:
        return np.asarray(measured, dtype=np.float64)
    i = int(np.floor((stamp_ns - previous_stamp_ns) / (period_s * 1e9) + 1e-9)) - 1  # last row reached by then
    if i < 0:
        return np.asarray(measured, dtype=np.float64)
    return np.asarray(previous[min(i, len(previous) - 1)], dtype=np.float64)


def clamp_chunk(
    positions: np.ndarray,
    reference: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    max_velocity: np.ndarray,
    period_s: float,
) -> tuple[np.ndarray, ClampReport]:
    """Clamp an (H, J) chunk; returns the safe chunk and how many targets were changed.

    `reference` is q_{-1}: the current command (`command_reference`), which falls back to the
    measured position.

    Raises ValueError for non-finite targets or references: such a chunk must not be commanded at
    all (clamping NaN would silently produce a motion command from garbage).
    """
    positions = np.asarray(positions, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if positions.ndim != 2 or positions.shape[1] != reference.shape[0]:
        raise ValueError(f"chunk {positions.shape} does not match {reference.shape[0]} reference joints")
    if not np.isfinite(positions).all():
        raise ValueError("chunk has non-finite targets")
    if not np.isfinite(reference).all():
        raise ValueError("reference joint positions are non-finite")
    if not period_s > 0:
        raise ValueError(f"period_s must be > 0, got {period_s}")
    in_limits = np.clip(positions, lower, upper)  # (H, J)
    position_clamps = int(np.count_nonzero(in_limits != positions))
    step = np.asarray(max_velocity, dtype=np.float64) * period_s  # (J,) largest move per row
    safe = np.empty_like(in_limits)
    previous = np.clip(reference, lower, upper)
    velocity_clamps = 0
    for i, row in enumerate(in_limits):
        reachable = np.clip(row, previous - step, previous + step)  # (J,)
        velocity_clamps += int(np.count_nonzero(reachable != row))
        safe[i] = reachable
        previous = reachable
    return safe, ClampReport(position_clamps, velocity_clamps)


class SafetyFilter:
    """The one gate every command to the robot passes, holds included (the node and the simulation).

    Args:
        lower / upper / max_velocity: (J,) the robot description's limits.
        velocity_scale: share of max_velocity allowed (the node's safety.velocity_scale).
        velocity_reference: row 0's reference: "commanded" (the target being commanded at the
            observation time, the measured position when there is none) or "measured".
        max_tracking_error: rad; when the measured position is farther than this from the commanded
            reference on any `tracked` joint, the reference is the measured position (0 = never).
        tracked: (J,) bool, the joints checked against max_tracking_error (default all; the node and the
            simulation leave the grippers out).
    """

    def __init__(
        self,
        lower: np.ndarray,
        upper: np.ndarray,
        max_velocity: np.ndarray,
        velocity_scale: float = 1.0,
        velocity_reference: str = "commanded",
        max_tracking_error: float = 0.5,
        tracked: np.ndarray | None = None,
    ) -> None:
        if velocity_reference not in ("commanded", "measured"):
            raise ValueError(f"velocity_reference must be 'commanded' or 'measured', got '{velocity_reference}'")
        self.lower, self.upper = np.asarray(lower, np.float64), np.asarray(upper, np.float64)
        self.max_velocity = np.asarray(max_velocity, np.float64)
        self.velocity_scale = velocity_scale
        self.velocity_reference = velocity_reference
        self.max_tracking_error = max_tracking_error
        self.tracked = np.ones(len(self.lower), bool) if tracked is None else np.asarray(tracked, bool)  # (J,)
        self._rows: np.ndarray | None = None  # the rows last commanded, and their stamp
        self._stamp_ns = 0

    @classmethod
    def for_robot(cls, robot: RobotDescription, **settings: Any) -> SafetyFilter:
        """The filter for a robot description: its limits, its arm joints tracked (grippers left out)."""
        tracked = np.array(robot.arm_joint_mask)
        return cls(robot.lower, robot.upper, robot.max_velocity, tracked=tracked, **settings)

    def reset(self) -> None:
        """Forget the last command (after a hold: the next command starts from the measured position)."""
        self._rows = None

    def command(
        self, rows: np.ndarray, stamp_ns: int, period_s: float, measured: np.ndarray
    ) -> tuple[np.ndarray, ClampReport]:
        """(H, J) rows for stamp + (i + 1) * period -> the rows to send, clamped; remembered as the
        commanded trajectory. ValueError for non-finite rows or measurements (nothing may be sent)."""
        measured = np.asarray(measured, dtype=np.float64)
        stale = False
        if self.velocity_reference == "measured":
            reference = measured
        else:
            reference = command_reference(self._rows, self._stamp_ns, period_s, stamp_ns, measured)
            tracking_error = np.abs(reference - measured)[self.tracked]  # (tracked joints,)
            stale = self.max_tracking_error > 0 and bool(np.any(tracking_error > self.max_tracking_error))
            if stale:
                reference = measured
        safe, report = clamp_chunk(
            rows, reference, self.lower, self.upper, self.max_velocity * self.velocity_scale, period_s
        )
        self._rows, self._stamp_ns = safe, stamp_ns
        return safe, ClampReport(report.position_clamps, report.velocity_clamps, stale)

    def hold(self, measured: np.ndarray) -> tuple[np.ndarray, int]:
        """A hold at the measured position, inside the position limits: (J,) target and the number of
        joints that had to be moved inside them. The next command starts from the measured position."""
        measured = np.asarray(measured, dtype=np.float64)
        target = np.clip(measured, self.lower, self.upper)  # (J,)
        self.reset()
        return target, int(np.count_nonzero(target != measured))
