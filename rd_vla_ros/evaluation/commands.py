"""CommandTimeline: what a recorded controller was told to do, per joint, as a function of time.

Ground truth for offline replay. Commands are added the way joint_trajectory_controller executes
them: a trajectory's points are reached at their absolute times, and a new trajectory replaces what
was left of the previous one from its start time on. Between points the target is interpolated
linearly; outside the first and last recorded point of a joint there is no ground truth.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np


class CommandTimeline:
    """Per-joint (time ns, position) samples for the robot's joints, in the robot's order."""

    def __init__(self, joint_names: Sequence[str]) -> None:
        self.joint_names = list(joint_names)
        self._column = {name: i for i, name in enumerate(self.joint_names)}
        self._times: list[list[int]] = [[] for _ in self.joint_names]
        self._values: list[list[float]] = [[] for _ in self.joint_names]
        self.foreign_joints: set[str] = set()  # commanded joints that are not the robot's
        self.messages = 0

    def add(self, joint_names: Sequence[str], times_ns: Sequence[int], positions: np.ndarray) -> None:
        """One command message: N points (times_ns (N,), positions (N, len(joint_names))).

        Later samples of the same joints at or after this message's first point are replaced.
        """
        positions = np.asarray(positions, dtype=np.float64).reshape(len(times_ns), len(joint_names))  # (N, M)
        if len(times_ns) == 0:
            return
        self.messages += 1
        start = int(times_ns[0])
        for m, name in enumerate(joint_names):
            j = self._column.get(name)
            if j is None:
                self.foreign_joints.add(name)
                continue
            times, values = self._times[j], self._values[j]
            cut = bisect.bisect_left(times, start)
            del times[cut:], values[cut:]
            for t, v in zip(times_ns, positions[:, m], strict=True):
                if np.isfinite(v) and (not times or int(t) > times[-1]):
                    times.append(int(t))
                    values.append(float(v))

    def commanded_joints(self) -> list[str]:
        return [name for name, times in zip(self.joint_names, self._times, strict=True) if times]

    def last_points(self) -> tuple[np.ndarray, np.ndarray]:
        """(J,) time ns of each joint's last commanded point (-1 when none) and its position (NaN)."""
        times = np.array([t[-1] if t else -1 for t in self._times], dtype=np.int64)
        values = np.array([v[-1] if v else np.nan for v in self._values])
        return times, values

    def span_ns(self) -> tuple[int, int] | None:
        """(first, last) command time over all joints, or None when nothing was commanded."""
        firsts = [t[0] for t in self._times if t]
        return (min(firsts), max(t[-1] for t in self._times if t)) if firsts else None

    def targets(self, times_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Commanded positions at arbitrary times.

        Args:
            times_ns: (...) int64 times.
        Returns:
            values (..., J) float64 (NaN where unknown) and valid (..., J) bool.
        """
        times_ns = np.asarray(times_ns, dtype=np.int64)
        flat = times_ns.reshape(-1)  # (T,)
        values = np.full((flat.size, len(self.joint_names)), np.nan)  # (T, J)
        for j, (t, v) in enumerate(zip(self._times, self._values, strict=True)):
            if not t:
                continue
            tj = np.asarray(t, dtype=np.int64)
            inside = (flat >= tj[0]) & (flat <= tj[-1])
            # interpolate in float64 seconds relative to the first sample (ns since epoch lose precision)
            values[inside, j] = np.interp((flat[inside] - tj[0]) / 1e9, (tj - tj[0]) / 1e9, np.asarray(v))
        values = values.reshape(*times_ns.shape, len(self.joint_names))
        return values, np.isfinite(values)
