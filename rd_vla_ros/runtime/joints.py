"""Map sensor_msgs/JointState-style (names, positions) onto the robot's ordered joint vector."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class JointStateError(ValueError):
    """A joint state that cannot be used; the message says why."""


class JointMapper:
    """Picks the robot's joints, in the robot's order, out of a JointState by name.

    Extra joints are ignored; missing ones, mismatched array lengths, duplicated names and non-finite
    positions of the joints we need raise JointStateError.
    """

    def __init__(self, joint_names: Sequence[str]) -> None:
        if len(set(joint_names)) != len(joint_names):
            raise ValueError(f"duplicate joint names in {list(joint_names)}")
        self.joint_names = list(joint_names)
        self._cache_key: tuple[str, ...] | None = None
        self._index: np.ndarray | None = None

    def positions(self, names: Sequence[str], positions: Sequence[float]) -> np.ndarray:
        """(J,) float64 positions in robot order."""
        if len(names) != len(positions):
            raise JointStateError(f"JointState has {len(names)} names but {len(positions)} positions")
        key = tuple(names)
        if key != self._cache_key:  # JointState name lists rarely change: index once
            self._index = self._build_index(key)
            self._cache_key = key
        values = np.asarray(positions, dtype=np.float64)[self._index]  # (J,)
        if not np.isfinite(values).all():
            bad = [self.joint_names[i] for i in np.flatnonzero(~np.isfinite(values))]
            raise JointStateError(f"non-finite position for {bad}")
        return values

    def missing(self, names: Sequence[str]) -> list[str]:
        present = set(names)
        return [n for n in self.joint_names if n not in present]

    def _build_index(self, names: tuple[str, ...]) -> np.ndarray:
        if len(set(names)) != len(names):
            raise JointStateError("JointState has duplicate joint names")
        lookup = {n: i for i, n in enumerate(names)}
        missing = [n for n in self.joint_names if n not in lookup]
        if missing:
            raise JointStateError(f"JointState lacks joints {missing}")
        return np.array([lookup[n] for n in self.joint_names], dtype=np.intp)
