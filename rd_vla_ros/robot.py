"""Robot description: which joints the policy controls, in which order, their limits, and the
topics that are the robot's (controllers, cameras).

Two sources, combined in one small YAML (config/aloha_bimanual.yaml is one):
    robot:
      name: my_arm
      urdf: my_arm.urdf            # optional: joints and position/velocity limits (path relative to this
                                   # file, or package://PACKAGE/PATH; a list for an arm and a gripper apart)
      arms:                        # what a URDF does not say: which joints the policy controls, in
        - name: arm                # which order, grouped per arm, which joint is a gripper, and each
          joints: [j1, j2, j3]     # arm's JointTrajectory topic
          gripper: finger_joint
          controller: /arm_controller/joint_trajectory
      cameras: {wrist: /wrist_camera/image_raw}   # camera name -> image topic, in the policy's order
      limits:                      # by joint name or joint kind; without a URDF every joint needs one,
        finger_joint: {lower: 0.0, upper: 0.8, velocity: 2.0}   # with one they override its values
A URDF alone (a file, or a node's `robot_description` XML) describes one arm of every actuated
(moving, non-mimic) joint in URDF order. No ROS types.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from rd_vla_ros.urdf import URDFError, URDFRobot, looks_like_urdf_xml, parse_urdf, read_urdf

LIMIT_KEYS = ("lower", "upper", "velocity")
PACKAGE_SCHEME = "package://"


class RobotDescriptionError(ValueError):
    """A robot description that cannot be used; the message names the file, the key and the fix."""


@dataclass(frozen=True)
class ArmDescription:
    name: str
    joints: tuple[str, ...]
    gripper: str | None
    controller: str = ""  # trajectory_msgs/JointTrajectory topic of this arm ("" = not given)
    gripper_controller: str = ""  # JointTrajectory topic of its gripper, when it has its own

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
    cameras: dict[str, str] = field(default_factory=dict)  # camera name -> image topic, policy order
    source: str = ""

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

    @property
    def camera_names(self) -> list[str]:
        return list(self.cameras)

    # ------------------------------------------------------------------------------- loading
    @classmethod
    def load(cls, value: str | Path) -> RobotDescription:
        """From whatever a user gives as the robot: URDF XML text (a `robot_description` parameter),
        a .urdf file, a robot YAML file, or the name of a YAML in the package's config/."""
        from rd_vla_ros.paths import config_path

        text = str(value)
        if looks_like_urdf_xml(text):
            try:
                return cls.from_urdf(parse_urdf(text, "the robot_description XML"))
            except URDFError as err:
                raise RobotDescriptionError(str(err)) from err
        path = Path(text)
        if not path.is_file() and not path.is_absolute() and len(path.parts) == 1:
            path = config_path(text)
        if not path.is_file():
            raise RobotDescriptionError(
                f"robot description '{text}' does not exist (give a robot YAML, a .urdf file or URDF XML text)"
            )
        if path.suffix.lower() in (".urdf", ".xml"):
            try:
                return cls.from_urdf(read_urdf(path))
            except URDFError as err:
                raise RobotDescriptionError(str(err)) from err
        return cls.from_yaml(path)

    @classmethod
    def from_yaml(cls, path: str | Path) -> RobotDescription:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except OSError as err:
            raise RobotDescriptionError(f"cannot read the robot description '{path}': {err.strerror or err}") from err
        except yaml.YAMLError as err:
            raise RobotDescriptionError(f"{path} is not valid YAML: {' '.join(str(err).split())}") from err
        if not isinstance(data, dict) or not isinstance(data.get("robot"), dict):
            raise RobotDescriptionError(f"{path}: expected a top-level 'robot' mapping")
        return cls.from_dict(data["robot"], source=str(path), base_dir=Path(path).parent)

    @classmethod
    def from_urdf(cls, model: URDFRobot) -> RobotDescription:
        """One arm of every actuated joint of the URDF, in URDF order, with the URDF's limits."""
        return cls.from_dict({"name": model.name}, source=model.source, urdf_models=[model])

    @classmethod
    def from_dict(
        cls,
        robot: dict,
        source: str = "<dict>",
        base_dir: Path | None = None,
        urdf_models: list[URDFRobot] | None = None,
    ) -> RobotDescription:
        models = list(urdf_models or []) + _read_urdfs(robot.get("urdf"), source, base_dir or Path())
        urdf_joints = {}
        for model in models:
            for joint in model.joints:
                if joint.name in urdf_joints:
                    raise RobotDescriptionError(f"{source}: joint '{joint.name}' is in more than one URDF")
                urdf_joints[joint.name] = joint
        name = str(robot.get("name") or (models[0].name if models else "robot"))
        arms = _arms(robot.get("arms"), source, name, [j for m in models for j in m.actuated])
        names = [n for arm in arms for n in arm.joint_names]
        if len(set(names)) != len(names):
            raise RobotDescriptionError(f"{source}: duplicate joint names in {names}")
        limits = robot.get("limits") or {}
        if not isinstance(limits, dict):
            raise RobotDescriptionError(f"{source}: robot.limits must map joint names (or kinds) to limits")
        lower, upper, vel = [], [], []
        for joint in names:
            lo, hi, v = _joint_limits(joint, limits, arms, urdf_joints, source)
            lower.append(lo)
            upper.append(hi)
            vel.append(v)
        return cls(name, tuple(arms), np.array(lower), np.array(upper), np.array(vel),
                   _cameras(robot.get("cameras"), source), source)  # fmt: skip


def policy_cameras(
    given: list[str] | None, no_cameras: bool, robot: RobotDescription, *fallbacks: tuple[str, list[str] | None]
) -> list[str]:
    """The cameras a new policy sees, in order: `given` (--cameras), none (--no-cameras: state-only), the
    robot file's `cameras`, else the first of `fallbacks` ((where, names)) that names some; ValueError
    (one line) when nothing does, rather than silently ALOHA's."""
    if given and no_cameras:
        raise ValueError("--cameras and --no-cameras contradict each other: give one")
    if no_cameras:
        return []
    if given:
        if len(set(given)) != len(given):
            raise ValueError(f"--cameras names a camera twice: {given}")
        return list(given)
    if robot.cameras:
        return robot.camera_names
    for _, names in fallbacks:
        if names:
            return list(names)
    where = ", ".join(["the robot file", *(w for w, _ in fallbacks)])
    raise ValueError(
        f"no cameras named for robot '{robot.name}' ({where} name none): give --cameras NAME... (or robot.cameras "
        "in the robot file), or --no-cameras for a state-only policy"
    )


def _read_urdfs(value: Any, source: str, base_dir: Path) -> list[URDFRobot]:
    if value is None:
        return []
    files = value if isinstance(value, list) else [value]
    if not files or not all(isinstance(f, str) and f for f in files):
        raise RobotDescriptionError(f"{source}: robot.urdf must be a file name or a list of file names, got {value!r}")
    models = []
    for f in files:
        path = _package_path(f, source) if f.startswith(PACKAGE_SCHEME) else Path(f).expanduser()
        path = path if path.is_absolute() else base_dir / path
        try:
            models.append(read_urdf(path))
        except URDFError as err:
            raise RobotDescriptionError(f"{source}: robot.urdf: {err}") from err
    return models


def _package_path(url: str, source: str) -> Path:
    """package://NAME/PATH: PATH in ROS package NAME's share directory (as ROS resolves URDF resources),
    else in the directory of the installed Python package NAME (e.g. package://airo_models/...)."""
    import importlib.util

    name, _, rest = url[len(PACKAGE_SCHEME) :].partition("/")
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(name)) / rest
    except (ImportError, LookupError, OSError):  # not a ROS package here (or no ROS 2 environment)
        pass
    spec = importlib.util.find_spec(name) if name.isidentifier() else None
    if spec is None or not spec.submodule_search_locations:
        raise RobotDescriptionError(f"{source}: robot.urdf {url}: no ROS or Python package named '{name}' is installed")
    return Path(next(iter(spec.submodule_search_locations))) / rest


def _arms(value: Any, source: str, robot_name: str, actuated: list[str]) -> list[ArmDescription]:
    if value is None and actuated:  # a URDF alone: one arm of its actuated joints
        return [ArmDescription(robot_name, tuple(actuated), None)]
    if not isinstance(value, list) or not value:
        raise RobotDescriptionError(
            f"{source}: robot.arms is empty: list the arms, each with the joints the policy controls"
            + ("" if actuated else " (or give robot.urdf)")
        )
    arms = []
    for i, arm in enumerate(value):
        if not isinstance(arm, dict):
            raise RobotDescriptionError(f"{source}: robot.arms[{i}] must be a mapping with 'joints'")
        joints = arm.get("joints") or []
        if not isinstance(joints, list) or not joints or not all(isinstance(j, str) and j for j in joints):
            raise RobotDescriptionError(f"{source}: robot.arms[{i}].joints must be a non-empty list of joint names")
        gripper = arm.get("gripper")
        if gripper is not None and not (isinstance(gripper, str) and gripper):
            raise RobotDescriptionError(f"{source}: robot.arms[{i}].gripper must be a joint name, got {gripper!r}")
        topics = {key: arm.get(key) or "" for key in ("controller", "gripper_controller")}
        for key, topic in topics.items():
            if not isinstance(topic, str):
                raise RobotDescriptionError(f"{source}: robot.arms[{i}].{key} must be a topic name, got {topic!r}")
        arms.append(ArmDescription(str(arm.get("name", f"arm{i}")), tuple(joints), gripper, **topics))
    return arms


def _cameras(value: Any, source: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(t, str) and t for k, t in value.items()
    ):
        raise RobotDescriptionError(f"{source}: robot.cameras must map camera names to image topics, got {value!r}")
    return dict(value)


def _joint_limits(
    joint: str, limits: dict, arms: list[ArmDescription], urdf_joints: dict, source: str
) -> tuple[float, float, float]:
    """(lower, upper, velocity): the URDF's values, overridden by robot.limits (by name or kind)."""
    entry = limits.get(joint) or _limits_by_kind(limits, joint, arms) or {}
    if not isinstance(entry, dict) or any(k not in LIMIT_KEYS for k in entry):
        raise RobotDescriptionError(f"{source}: robot.limits.{joint} must be a mapping of {LIMIT_KEYS}, got {entry!r}")
    from_urdf = urdf_joints.get(joint)
    merged: dict[str, Any] = {}
    if from_urdf is not None:
        values = (from_urdf.lower, from_urdf.upper, from_urdf.velocity)
        merged = {k: v for k, v in zip(LIMIT_KEYS, values, strict=True) if v is not None}
    merged.update(entry)
    missing = [k for k in LIMIT_KEYS if merged.get(k) is None]
    if missing:
        if from_urdf is None and urdf_joints:
            why = f"it is not a moving joint of the URDF (those are {list(urdf_joints)})"
        elif from_urdf is None:
            why = "there is no URDF"
        elif from_urdf.type == "continuous" and "lower" in missing:
            why = "it is continuous in the URDF (no position limits)"
        else:
            why = f"the URDF gives no {'/'.join(missing)}"
        raise RobotDescriptionError(
            f"{source}: no {'/'.join(missing)} limit for joint '{joint}': {why}; "
            f"give robot.limits.{joint}: {{lower: ..., upper: ..., velocity: ...}}"
        )
    try:
        lo, hi, v = (float(merged[k]) for k in LIMIT_KEYS)
    except (TypeError, ValueError):
        raise RobotDescriptionError(f"{source}: joint '{joint}' limits must be numbers, got {merged}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi and math.isfinite(v) and v > 0):
        raise RobotDescriptionError(
            f"{source}: joint '{joint}' needs finite lower < upper and velocity > 0, got {merged}"
        )
    return lo, hi, v


def _limits_by_kind(limits: dict, joint: str, arms: list[ArmDescription]) -> dict | None:
    """Limits given per joint kind: 'left_shoulder' -> 'shoulder' (arm-name prefix stripped)."""
    for arm in arms:
        prefix = f"{arm.name}_"
        if joint.startswith(prefix) and joint[len(prefix) :] in limits:
            return limits[joint[len(prefix) :]]
    return None
