"""The node's parameters, declared once: type, default, description, range, read-only flag.

`PARAMS` is the single source of truth: the node declares from it, validates runtime changes with
`validate`, and the tests check config/rd_vla_node.yaml against it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType

from rd_vla_ros.model.config import InferenceSettings
from rd_vla_ros.model.halting import HALTING_CRITERIA, make_criterion
from rd_vla_ros.model.horizon import HORIZON_SCHEDULES, make_schedule
from rd_vla_ros.ros.inputs import instruction_problem
from rd_vla_ros.runtime.blending import BLENDING_MODES, ChunkBlender
from rd_vla_ros.runtime.control_loop import ControlLoop
from rd_vla_ros.runtime.joints import parse_renames
from rd_vla_ros.runtime.observation import AssemblyLimits

_TYPES = {
    bool: ParameterType.PARAMETER_BOOL,
    int: ParameterType.PARAMETER_INTEGER,
    float: ParameterType.PARAMETER_DOUBLE,
    str: ParameterType.PARAMETER_STRING,
    list: ParameterType.PARAMETER_STRING_ARRAY,
}


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any
    description: str
    read_only: bool = False
    low: float | None = None  # inclusive range for int / float
    high: float | None = None
    choices: tuple[str, ...] = ()

    @property
    def kind(self) -> type:
        return type(self.default)

    def descriptor(self) -> ParameterDescriptor:
        d = ParameterDescriptor(
            name=self.name, type=_TYPES[self.kind], description=self.description, read_only=self.read_only
        )
        if self.choices:
            d.additional_constraints = "one of: " + ", ".join(self.choices)
        if self.kind is float and self.low is not None and self.high is not None:
            d.floating_point_range = [FloatingPointRange(from_value=float(self.low), to_value=float(self.high))]
        if self.kind is int and self.low is not None and self.high is not None:
            d.integer_range = [IntegerRange(from_value=int(self.low), to_value=int(self.high), step=1)]
        return d

    def check(self, value: Any) -> str:
        """ "" when `value` is acceptable, else the reason."""
        expected = self.kind
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            return f"{self.name} must be {expected.__name__}, got {type(value).__name__}"
        if expected is list and not all(isinstance(item, str) for item in value):
            return f"{self.name} must be a list of strings, got {value!r}"
        if expected is float and not math.isfinite(value):
            return f"{self.name} must be finite, got {value}"
        if self.low is not None and value < self.low:
            return f"{self.name} must be >= {self.low}, got {value}"
        if self.high is not None and value > self.high:
            return f"{self.name} must be <= {self.high}, got {value}"
        if self.choices and value not in self.choices:
            return f"{self.name} must be one of {list(self.choices)}, got '{value}'"
        return ""


ALOHA_ARMS = ["left", "right"]
PARAMS: list[ParamSpec] = [
    # ---- structure (read-only: changing them needs a reconfigure)
    ParamSpec("checkpoint", "embedded", "checkpoint directory (model.safetensors + config.json); 'embedded' = the "
              "model shipped with the package", read_only=True),
    ParamSpec("device", "cpu", "device for the model: cpu, cuda, cuda:N (onnxruntime: cuda = CUDA provider, "
              "falling back to CPU)", read_only=True),
    ParamSpec("runtime", "torch", "inference runtime: torch (checkpoint directory) or onnxruntime (a directory "
              "written by `rd-vla export`)", read_only=True, choices=("torch", "onnxruntime")),
    ParamSpec("backbone_dtype", "float32", "dtype the backbone runs in (runtime torch): bfloat16 halves its memory "
              "and, on a GPU, its latency; the recurrent head stays float32", read_only=True,
              choices=("float32", "bfloat16", "float16")),
    ParamSpec("runtime.cuda_graphs", False, "runtime torch on a CUDA device: replay one captured CUDA graph per "
              "recurrent head iteration instead of launching its kernels one by one (captured at warm-up); "
              "elsewhere the head runs eagerly (one warning)", read_only=True),
    ParamSpec("torch_threads", 0, "torch intra-op CPU threads; 0 = auto (cores - 1, at least 1: one core stays "
              "free for DDS and callbacks)", read_only=True, low=0, high=256),
    ParamSpec("warmup_runs", 2, "inferences on a blank observation at max_iterations when the node activates, so "
              "the first real chunk is not slow (0 = none)", read_only=True, low=0, high=100),
    ParamSpec("robot_description", "aloha_bimanual.yaml", "the robot: a robot description YAML (a path, or a file "
              "name in the package's config/), a .urdf file, or the URDF XML itself (one arm of its actuated "
              "joints)", read_only=True),
    ParamSpec("camera_names", ["top"], "camera names, in the checkpoint's order", read_only=True),
    ParamSpec("camera_topics", ["cameras/top/image_raw"],
              "image topic per camera (same order as camera_names)", read_only=True),
    ParamSpec("camera_transport", "raw", "sensor_msgs/Image (raw) or sensor_msgs/CompressedImage (compressed)",
              read_only=True, choices=("raw", "compressed")),
    ParamSpec("camera_qos", "sensor_data", "camera subscription QoS: sensor_data (best effort, depth 1) or "
              "reliable (depth 1)", read_only=True, choices=("sensor_data", "reliable")),
    ParamSpec("joint_state_topic", "joint_states", "sensor_msgs/JointState topic", read_only=True),
    ParamSpec("joint_states.rename", [], "for drivers that name joints otherwise: PUBLISHED=ROBOT per item, e.g. "
              "['q0=shoulder_pan_joint', ...] (names not listed are used as published)", read_only=True),
    ParamSpec("joint_states.names", [], "for drivers that publish an empty name array: the names of the positions, "
              "in order (robot joint names, or published names that joint_states.rename maps); used only when a "
              "message has no names", read_only=True),
    ParamSpec("instruction_topic", "instruction", "std_msgs/String topic overriding the instruction parameter",
              read_only=True),
    ParamSpec("arm_trajectory_topics", ["left_arm_controller/joint_trajectory",
              "right_arm_controller/joint_trajectory"], "trajectory_msgs/JointTrajectory topic per arm (robot "
              "description order)", read_only=True),
    ParamSpec("gripper_mode", "in_trajectory", "grippers inside the arm trajectory, or on their own topics",
              read_only=True, choices=("in_trajectory", "separate")),
    ParamSpec("gripper_topics", ["left_gripper_controller/joint_trajectory",
              "right_gripper_controller/joint_trajectory"], "JointTrajectory topic per gripper (gripper_mode "
              "separate)", read_only=True),
    ParamSpec("diagnostics_period_s", 1.0, "period of /diagnostics", read_only=True, low=0.05, high=60.0),
    # ---- runtime-tunable
    ParamSpec("instruction", "", "language instruction (a message on instruction_topic replaces it)"),
    ParamSpec("motion_enabled", False, "publish motion commands (trajectories); false = observe only. Also "
              "through the ~/enable_motion service"),
    ParamSpec("halting.strategy", "action_mse", "halting criterion", choices=tuple(HALTING_CRITERIA)),
    ParamSpec("halting.threshold", 0.0, "the strategy's threshold: delta for action_mse (its default 1e-3), a "
              "similarity for cosine (0.999), a relative change for latent_change (0.01); 0 = the strategy's "
              "default", low=0.0, high=1.0),
    ParamSpec("halting.min_iterations", 1, "minimum recurrent iterations", low=1, high=256),
    ParamSpec("halting.max_iterations", 32, "maximum recurrent iterations", low=1, high=256),
    ParamSpec("halting.fixed_depth", 0, "run exactly this many iterations; 0 = adaptive halting", low=0, high=256),
    ParamSpec("halting.warm_start", False, "start each chunk's scratchpad from the previous chunk's final state, "
              "shifted by the rows executed since, instead of fresh noise (forgotten on activation)"),
    ParamSpec("halting.warm_start_shift", False, "warm start: false = every latent token starts from the previous "
              "chunk's token in the same slot; true = the previous state shifted by the rows executed since (each "
              "token starts from the one that planned its instant)"),
    ParamSpec("horizon.schedule", "linear", "execution-horizon schedule", choices=tuple(HORIZON_SCHEDULES)),
    ParamSpec("horizon.binary.tau", 4, "binary: k* above this -> short horizon", low=1, high=256),
    ParamSpec("horizon.binary.h_short", 4, "binary: short horizon (rows)", low=1, high=256),
    ParamSpec("horizon.binary.h_long", 8, "binary: long horizon (rows)", low=1, high=256),
    ParamSpec("horizon.linear.h_max", 8, "linear: horizon at k* <= tau_base", low=1, high=256),
    ParamSpec("horizon.linear.h_min", 2, "linear: shortest horizon", low=1, high=256),
    ParamSpec("horizon.linear.tau_base", 4, "linear: iterations before the horizon shrinks", low=1, high=256),
    ParamSpec("horizon.fixed.h", 8, "fixed: horizon (rows)", low=1, high=256),
    ParamSpec("blending.mode", "none", "how each chunk is blended, before the safety filter, with what earlier chunks "
              "planned for the same instants: none, ensemble (ACT's temporal ensembling), crossfade",
              choices=BLENDING_MODES),
    ParamSpec("blending.decay", 0.01, "ensemble: weight exp(-decay * i) of the i-th oldest prediction of an instant",
              low=0.0, high=10.0),
    ParamSpec("inputs.camera_max_age_s", 0.2, "camera images older than this block inference", low=1e-3, high=60.0),
    ParamSpec("inputs.joint_state_max_age_s", 0.1, "joint states older than this block inference", low=1e-3,
              high=60.0),
    ParamSpec("inputs.sync_tolerance_s", 0.05, "largest stamp spread between cameras", low=1e-4, high=60.0),
    ParamSpec("inputs.settle_s", 0.0, "when inference waits for a new input: wait this long after the first one "
              "arrives, so the other cameras and the joint state of the same instant are used too (a few ms "
              "for synchronized camera rigs); 0 = start at once", low=0.0, high=1.0),
    ParamSpec("safety.hold_timeout_s", 0.5, "inputs blocked this long -> publish a hold (current positions) once",
              low=0.01, high=60.0),
    ParamSpec("safety.velocity_scale", 1.0, "scales the robot description's velocity limits", low=0.01, high=1.0),
    ParamSpec("safety.velocity_reference", "commanded", "the velocity limit's reference for row 0: commanded = the "
              "target being commanded at the observation time (keeps a gripper's squeeze and an arm's tracking "
              "lag), measured = the measured joint positions (a stricter bound on the first step from where the "
              "robot is)", choices=("commanded", "measured")),
    ParamSpec("safety.max_tracking_error", 0.5, "rad: a robot farther than this from the last command on any "
              "arm joint (moved by hand, reset, blocked) makes the next chunk start from its measured position instead "
              "of pulling it back; 0 = never", low=0.0, high=10.0),
]  # fmt: skip
SPECS = {p.name: p for p in PARAMS}


def declared_value(node: Any, spec: ParamSpec) -> Any:
    """A declared parameter's value. A list set to [] (camera_names: [] for a state-only policy) is left
    unset by rclpy, which cannot tell an empty list's type: that is [] here."""
    value = node.get_parameter_or(spec.name, None)
    value = None if value is None else value.value
    return [] if value is None and spec.kind is list else value


def validate(values: dict[str, Any]) -> str:
    """ "" when the full parameter set is consistent, else the reason (names the parameter)."""
    for name, value in values.items():
        spec = SPECS.get(name)
        if spec is None:
            return f"unknown parameter '{name}'"
        reason = spec.check(value)
        if reason:
            return reason
    try:
        inference_settings(values)
        assembly_limits(values)
    except ValueError as err:
        return str(err)
    instruction = values["instruction"]
    if instruction and instruction_problem(instruction.strip()):  # "" = not set
        return f"instruction: {instruction_problem(instruction.strip())} ('' leaves it unset)"
    try:
        parse_renames(values["joint_states.rename"])
    except ValueError as err:
        return f"joint_states.rename: {err}"
    names = values["joint_states.names"]
    if len(set(names)) != len(names) or not all(n.strip() for n in names):
        return f"joint_states.names must be distinct, non-empty joint names, got {names}"
    if len(values["camera_topics"]) != len(values["camera_names"]):
        return "camera_topics and camera_names must have the same length"
    if values["runtime"] != "torch" and values["backbone_dtype"] != "float32":
        return f"backbone_dtype {values['backbone_dtype']} needs runtime torch (an ONNX export is float32)"
    if values["runtime"] != "torch" and values["runtime.cuda_graphs"]:
        return "runtime.cuda_graphs needs runtime torch (onnxruntime runs its own graphs)"
    return ""


def inference_settings(values: dict[str, Any]) -> InferenceSettings:
    """InferenceSettings from parameter values; ValueError names the offending parameter."""
    schedule = values["horizon.schedule"]
    prefix = f"horizon.{schedule}."
    horizon_params = {k[len(prefix) :]: v for k, v in values.items() if k.startswith(prefix)}
    try:
        make_schedule(schedule, chunk_length=max(horizon_params.values(), default=1), **horizon_params)
    except ValueError as err:
        raise ValueError(f"{prefix}*: {err}") from err
    if values["halting.max_iterations"] < values["halting.min_iterations"]:
        raise ValueError(
            f"halting.max_iterations ({values['halting.max_iterations']}) must be >= halting.min_iterations "
            f"({values['halting.min_iterations']})"
        )
    threshold = values["halting.threshold"] or None  # 0: the strategy's own default
    try:
        make_criterion(values["halting.strategy"], threshold)
    except ValueError as err:
        raise ValueError(
            f"halting.threshold {values['halting.threshold']:g} does not fit halting.strategy "
            f"{values['halting.strategy']}: {err}; set both in one call, or halting.threshold 0 for the default"
        ) from err
    return InferenceSettings(
        halting=values["halting.strategy"],
        threshold=threshold,
        min_iterations=values["halting.min_iterations"],
        max_iterations=values["halting.max_iterations"],
        fixed_depth=values["halting.fixed_depth"],
        horizon=schedule,
        horizon_params=horizon_params,
        cuda_graphs=values["runtime.cuda_graphs"],
        warm_start=values["halting.warm_start"],
        warm_start_shift=values["halting.warm_start_shift"],
    )


def assembly_limits(values: dict[str, Any]) -> AssemblyLimits:
    return AssemblyLimits(
        camera_max_age_s=values["inputs.camera_max_age_s"],
        joint_state_max_age_s=values["inputs.joint_state_max_age_s"],
        sync_tolerance_s=values["inputs.sync_tolerance_s"],
    )


def apply_to_loop(loop: ControlLoop, values: dict[str, Any], changes: dict[str, Any], now_ns: int) -> None:
    """Validated values to a running control loop (the caller holds loop.command_lock, so that disabling
    motion and the inference thread's next command are ordered)."""
    loop.runner.settings = inference_settings(values)
    loop.hold_timeout_s = values["safety.hold_timeout_s"]
    with loop.inputs_lock:
        loop.assembler.limits = assembly_limits(values)
        if "instruction" in changes and values["instruction"]:
            loop.assembler.instruction.update(values["instruction"], now_ns, now_ns)
    loop.set_motion(values["motion_enabled"])  # disabling motion while active sends a hold
    loop.safety.velocity_scale = values["safety.velocity_scale"]
    loop.safety.velocity_reference = values["safety.velocity_reference"]
    loop.safety.max_tracking_error = values["safety.max_tracking_error"]
    loop.scheduler.settle_ns = round(values["inputs.settle_s"] * 1e9)
    if any(k.startswith("blending.") for k in changes):
        loop.blender = ChunkBlender(values["blending.mode"], values["blending.decay"])


def torch_threads(value: int) -> int:
    """Intra-op threads for torch: `value`, or cores - 1 (at least 1) when 0."""
    return value if value > 0 else max(1, (os.cpu_count() or 2) - 1)


def joint_naming(values: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """joint_states.rename (published -> robot name) and joint_states.names of validated values."""
    return parse_renames(values["joint_states.rename"]), list(values["joint_states.names"])


def values_from_file(path: str | Path, node_name: str = "/rd_vla_node") -> dict[str, Any]:
    """The node's parameter values from a `--params-file` YAML (declared defaults for what it omits).

    Lets offline tools (replay) run with exactly the settings a deployed node uses. Raises ValueError
    naming the offending parameter when the file is invalid.
    """
    from rclpy.parameter import parameter_dict_from_yaml_file, parameter_value_to_python

    values: dict[str, Any] = {p.name: p.default for p in PARAMS}
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(
                f"{path} is {'empty' if data is None else 'not a mapping'}: a ROS 2 parameter file maps node names "
                "to ros__parameters (see config/rd_vla_node.yaml)"
            )
        # The node's key as the file spells it ("rd_vla_node" or "/rd_vla_node"): Kilted's rclpy matches
        # either spelling, Jazzy's (rclpy 7) only the literal key.
        spellings = {node_name, node_name.lstrip("/"), "/" + node_name.lstrip("/")}
        keys = [key for key in data if key in spellings] or [node_name]
        loaded = parameter_dict_from_yaml_file(str(path), target_nodes=keys)
    except (OSError, RuntimeError, yaml.YAMLError) as err:
        reason = " ".join(str(err).split())  # one line
        raise ValueError(f"cannot read parameters from {path}: {reason}") from err
    for name, param in loaded.items():
        if name in SPECS:
            values[name] = parameter_value_to_python(param.value)
    reason = validate(values)
    if reason:
        raise ValueError(f"{path}: {reason}")
    return values
