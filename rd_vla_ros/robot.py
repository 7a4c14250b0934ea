"""Robot description: which joints the policy controls, in which order, and their limits.

Loaded from a YAML file such as config/aloha_bimanual.yaml. No ROS types.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml


@dataclass(frozen=True)
class ArmDescription:
    name: str
    joints: tuple[str, ...]
    gripper: str | None

    @property
    def joint_names(self) -> tuple[str, ...]:
        """Arm joints then gripper: the order of this arm's block in the action vector."""
        return self.joints + ((self.gripper,) if self.gripper else ())


@dataclass(frozen=True)
class RobotDescription:
    """Ordered joints of a (multi-)arm robot with per-joint limits.

    The action / proprio vector is the concatenation of each arm's `joint_names`, in arm order
    (ALOHA: left 6 joints + left gripper, right 6 joints + right gripper = 14).
    """

    name: str
    arms: tuple[ArmDescription, ...]
    lower: np.ndarray  # (J,) position lower limits
    upper: np.ndarray  # (J,) position upper limits
    max_velocity: np.ndarray  # (J,) velocity limits, units per second

    @property
    def joint_names(self) -> list[str]:
        return [name for arm in self.arms for name in arm.joint_names]

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def arm_joint_mask(self) -> list[bool]:
        """Per joint of `joint_names`: True for arm joints, False for grippers."""
        grippers = set(self.gripper_names)
        return [name not in grippers for name in self.joint_names]

    @property
    def gripper_names(self) -> list[str]:
        return [arm.gripper for arm in self.arms if arm.gripper]

    @classmethod
    def from_yaml(cls, path: str | Path) -> RobotDescription:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
        if not isinstance(data, dict) or "robot" not in data:
            raise ValueError(f"{path}: expected a top-level 'robot' mapping")
        return cls.from_dict(data["robot"], source=str(path))

    @classmethod
    def from_dict(cls, robot: dict, source: str = "<dict>") -> RobotDescription:
        arms = []
        for i, arm in enumerate(robot.get("arms") or []):
            joints = tuple(arm.get("joints") or [])
            if not joints:
                raise ValueError(f"{source}: robot.arms[{i}] has no joints")
            arms.append(ArmDescription(str(arm.get("name", f"arm{i}")), joints, arm.get("gripper")))
        if not arms:
            raise ValueError(f"{source}: robot.arms is empty")
        limits = robot.get("limits") or {}
        names = [n for arm in arms for n in arm.joint_names]
        if len(set(names)) != len(names):
            raise ValueError(f"{source}: duplicate joint names in {names}")
        lower, upper, vel = [], [], []
        for name in names:
            entry = limits.get(name) or _limits_by_kind(limits, name, arms)
            if entry is None:
                raise ValueError(f"{source}: no limits for joint '{name}' (by name or by joint kind)")
            lo, hi, v = float(entry["lower"]), float(entry["upper"]), float(entry["velocity"])
            if not (lo < hi and v > 0):
                raise ValueError(f"{source}: joint '{name}' needs lower < upper and velocity > 0, got {entry}")
            lower.append(lo)
            upper.append(hi)
            vel.append(v)
        return cls(str(robot.get("name", "robot")), tuple(arms), np.array(lower), np.array(upper), np.array(vel))


def _limits_by_kind(limits: dict, joint: str, arms: list[ArmDescription]) -> dict | None:
    """Limits given per joint kind: 'left_shoulder' -> 'shoulder' (arm-name prefix stripped)."""
    for arm in arms:
        prefix = f"{arm.name}_"
        if joint.startswith(prefix) and joint[len(prefix) :] in limits:
            return limits[joint[len(prefix) :]]
    return None
