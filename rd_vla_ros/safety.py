"""Command limits applied to every chunk before it can move a robot.

Row i of a chunk is the target for time t_obs + (i + 1) * dt. Targets are clamped to the joint
position limits, then to what a joint can reach from the latest measured position at its velocity
limit: |q_i - q_{i-1}| <= v_max * dt with q_{-1} = the measured position.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ClampReport:
    position_clamps: int  # targets moved inside the position limits
    velocity_clamps: int  # targets moved to respect the velocity limits

    @property
    def total(self) -> int:
        return self.position_clamps + self.velocity_clamps


def clamp_chunk(
    positions: np.ndarray,
    measured: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    max_velocity: np.ndarray,
    period_s: float,
) -> tuple[np.ndarray, ClampReport]:
    """Clamp an (H, J) chunk; returns the safe chunk and how many targets were changed.

    Raises ValueError for non-finite targets or measurements: such a chunk must not be commanded at
    all (clamping NaN would silently produce a motion command from garbage).
    """
    positions = np.asarray(positions, dtype=np.float64)
    measured = np.asarray(measured, dtype=np.float64)
    if positions.ndim != 2 or positions.shape[1] != measured.shape[0]:
        raise ValueError(f"chunk {positions.shape} does not match {measured.shape[0]} measured joints")
    if not np.isfinite(positions).all():
        raise ValueError("chunk has non-finite targets")
    if not np.isfinite(measured).all():
        raise ValueError("measured joint positions are non-finite")
    if not period_s > 0:
        raise ValueError(f"period_s must be > 0, got {period_s}")
    in_limits = np.clip(positions, lower, upper)  # (H, J)
    position_clamps = int(np.count_nonzero(in_limits != positions))
    step = np.asarray(max_velocity, dtype=np.float64) * period_s  # (J,) largest move per row
    safe = np.empty_like(in_limits)
    previous = np.clip(measured, lower, upper)
    velocity_clamps = 0
    for i, row in enumerate(in_limits):
        reachable = np.clip(row, previous - step, previous + step)  # (J,)
        velocity_clamps += int(np.count_nonzero(reachable != row))
        safe[i] = reachable
        previous = reachable
    return safe, ClampReport(position_clamps, velocity_clamps)
