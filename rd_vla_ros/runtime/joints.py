"""Map sensor_msgs/JointState-style (names, positions) onto the robot's ordered joint vector."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


class JointStateError(ValueError):
    """A joint state that cannot be used; the message says why."""


class JointMapper:
    """Picks the robot's joints, in the robot's order, out of a JointState by name.

    For drivers that name joints otherwise, `renames` maps a published name to the robot's; for those
    that publish an empty `name` array, `positional_names` names the positions in order (used only
    when a message has no names). Extra joints are ignored; missing ones, mismatched array lengths,
    duplicated names and non-finite positions of the joints we need raise JointStateError.
    """

    def __init__(
        self,
        joint_names: Sequence[str],
        renames: Mapping[str, str] | None = None,
        positional_names: Sequence[str] | None = None,
    ) -> None:
        if len(set(joint_names)) != len(joint_names):
            raise ValueError(f"duplicate joint names in {list(joint_names)}")
        self.joint_names = list(joint_names)
        self.renames = dict(renames or {})
        self.positional_names = list(positional_names or [])
        self._cache_key: tuple[str, ...] | None = None
        self._index: np.ndarray | None = None

    def positions(self, names: Sequence[str], positions: Sequence[float]) -> np.ndarray:
        """(J,) float64 positions in robot order."""
        if not names and self.positional_names:
            names = self.positional_names
        if len(names) != len(positions):
            raise JointStateError(f"JointState has {len(names)} names but {len(positions)} positions")
        key = tuple(self.renames.get(n, n) for n in names) if self.renames else tuple(names)
        if key != self._cache_key:  # JointState name lists rarely change: index once
            self._index = self._build_index(key)
            self._cache_key = key
        values = np.asarray(positions, dtype=np.float64)[self._index]  # (J,)
        if not np.isfinite(values).all():
            bad = [self.joint_names[i] for i in np.flatnonzero(~np.isfinite(values))]
            raise JointStateError(f"non-finite position for {bad}")
        return values

    def missing(self, names: Sequence[str]) -> list[str]:
        present = {self.renames.get(n, n) for n in (names or self.positional_names)}
        return [n for n in self.joint_names if n not in present]

    def _build_index(self, names: tuple[str, ...]) -> np.ndarray:
        if len(set(names)) != len(names):
            raise JointStateError(f"JointState has duplicate joint names{' after renaming' if self.renames else ''}")
        lookup = {n: i for i, n in enumerate(names)}
        missing = [n for n in self.joint_names if n not in lookup]
        if missing:
            raise JointStateError(f"JointState lacks joints {missing}")
        return np.array([lookup[n] for n in self.joint_names], dtype=np.intp)


def parse_renames(items: Sequence[str]) -> dict[str, str]:
    """['recorded=robot', ...] -> {'recorded': 'robot'}; ValueError names a malformed or repeated item."""
    renames: dict[str, str] = {}
    for item in items:
        recorded, eq, robot = (part.strip() for part in item.partition("="))
        if not eq or not recorded or not robot:
            raise ValueError(f"'{item}' is not PUBLISHED_NAME=ROBOT_JOINT")
        if recorded in renames:
            raise ValueError(f"'{recorded}' is renamed twice")
        renames[recorded] = robot
    return renames
