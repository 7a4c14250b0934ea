"""The whole RD-VLA configuration: backbone, head, training depth, inference (halting, horizon)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from rd_vla_ros.model.backbone_config import BackboneConfig
from rd_vla_ros.model.depth import DepthSamplerConfig
from rd_vla_ros.model.halting import make_criterion
from rd_vla_ros.model.head_config import HeadConfig
from rd_vla_ros.runtime.camera_input import check_crop

CHECKPOINT_FORMAT_VERSION = 1


@dataclass
class InferenceSettings:
    """How the recurrent head runs at inference; everything here is tunable while the robot runs.

    Attributes:
        halting: halting criterion name (see rd_vla_ros.model.halting), e.g. "action_mse".
        threshold: the criterion's threshold (delta for action_mse); None = the criterion's default
            (action_mse 1e-3, cosine 0.999, latent_change 0.01); see `effective_threshold`.
        min_iterations / max_iterations: bounds on k* (the official code caps at 32).
        fixed_depth: > 0 runs exactly this many iterations (no halting); 0 = adaptive.
        horizon: execution-horizon schedule name (see rd_vla_ros.model.horizon): "linear", "binary", "fixed".
        horizon_params: that schedule's parameters (e.g. {"h_max": 8, "h_min": 2, "tau_base": 4}).
        cuda_graphs: replay one captured CUDA graph per head iteration (rd_vla_ros.model.cuda_graph)
            instead of launching its kernels one by one; same chunks, less launch overhead on a GPU.
            Where it cannot be (CPU, onnxruntime, a failed capture) the head runs eagerly.
        warm_start: start the scratchpad from the previous chunk's final state instead of fresh noise;
            the caller (PolicyRunner) keeps that state between chunks and forgets it at episode boundaries.
        warm_start_shift: False = token i starts from the previous chunk's token i (its own slot,
            which planned the instant `shift` rows earlier); True = the state is shifted by the rows
            executed since, so each token starts from the one that planned its instant
            (rd_vla_ros.model.head.shift_state). A token's content is bound to its slot: shifted, it is
            about as far from the new fixed point as noise (docs/replay.md, "Warm start").
    """

    halting: str = "action_mse"
    threshold: float | None = None
    min_iterations: int = 1
    max_iterations: int = 32
    fixed_depth: int = 0
    horizon: str = "linear"
    horizon_params: dict[str, float] = field(default_factory=dict)
    cuda_graphs: bool = False
    warm_start: bool = False
    warm_start_shift: bool = False

    def __post_init__(self) -> None:
        if self.threshold is not None and not (math.isfinite(self.threshold) and self.threshold > 0):
            raise ValueError(f"InferenceSettings.threshold must be finite and > 0, got {self.threshold}")
        make_criterion(self.halting, self.threshold)  # ValueError: unknown strategy, or a threshold not of its scale
        if self.min_iterations < 1:
            raise ValueError(f"InferenceSettings.min_iterations must be >= 1, got {self.min_iterations}")
        if self.max_iterations < self.min_iterations:
            raise ValueError(
                f"InferenceSettings.max_iterations must be >= min_iterations ({self.min_iterations}),"
                f" got {self.max_iterations}"
            )
        if self.fixed_depth < 0:
            raise ValueError(f"InferenceSettings.fixed_depth must be >= 0 (0 = adaptive), got {self.fixed_depth}")
        if not isinstance(self.cuda_graphs, bool):
            raise ValueError(f"InferenceSettings.cuda_graphs must be a bool, got {self.cuda_graphs!r}")

    @property
    def effective_threshold(self) -> float | None:
        """The threshold the criterion runs with (its default when `threshold` is None); None when fixed."""
        return make_criterion(self.halting, self.threshold).threshold if self.adaptive else None

    @property
    def adaptive(self) -> bool:
        return self.fixed_depth == 0

    @property
    def iteration_bounds(self) -> tuple[int, int]:
        """(min, max) iterations actually used: a fixed depth pins both."""
        if self.fixed_depth > 0:
            return self.fixed_depth, self.fixed_depth
        return self.min_iterations, self.max_iterations


@dataclass
class RDVLAConfig:
    """Everything needed to rebuild a policy; stored as config.json next to model.safetensors.

    Attributes:
        joint_names: the action / proprio layout, e.g. ALOHA's 14 joints (left arm + gripper, right
            arm + gripper). Its length must equal head.action_dim and head.proprio_dim.
        camera_names: the cameras the policy sees, in backbone order (len == backbone.num_cameras); empty
            for a state-only policy (instruction + joint positions).
        control_period_s: time between consecutive chunk rows (ALOHA: 0.02 s, 50 Hz).
        camera_crops: camera name -> [left, top, right, bottom] fractions of the incoming frame the
            policy sees (resized to backbone.image_size); cameras not listed are used whole.
    """

    backbone: BackboneConfig
    head: HeadConfig
    joint_names: list[str]
    camera_names: list[str]
    control_period_s: float = 0.02
    camera_crops: dict[str, list[float]] = field(default_factory=dict)
    depth: DepthSamplerConfig = field(default_factory=DepthSamplerConfig)
    inference: InferenceSettings = field(default_factory=InferenceSettings)

    def __post_init__(self) -> None:
        if not self.joint_names or len(set(self.joint_names)) != len(self.joint_names):
            raise ValueError(
                f"RDVLAConfig.joint_names must be distinct names of at least one joint, got {self.joint_names}"
            )
        if len(set(self.camera_names)) != len(self.camera_names):
            raise ValueError(f"RDVLAConfig.camera_names has duplicates: {self.camera_names}")
        j = len(self.joint_names)
        if j != self.head.action_dim or j != self.head.proprio_dim:
            raise ValueError(
                f"RDVLAConfig.joint_names has {j} joints but head.action_dim={self.head.action_dim},"
                f" head.proprio_dim={self.head.proprio_dim}"
            )
        if len(self.camera_names) != self.backbone.num_cameras:
            raise ValueError(
                f"RDVLAConfig.camera_names has {len(self.camera_names)} names but backbone.num_cameras="
                f"{self.backbone.num_cameras}"
            )
        for name, crop in self.camera_crops.items():
            if name not in self.camera_names:
                raise ValueError(f"RDVLAConfig.camera_crops names camera '{name}', not one of {self.camera_names}")
            check_crop(crop, f"RDVLAConfig.camera_crops['{name}']")
        if not self.control_period_s > 0:
            raise ValueError(f"RDVLAConfig.control_period_s must be > 0, got {self.control_period_s}")


ALOHA_JOINTS = [
    f"{side}_{joint}"
    for side in ("left", "right")
    for joint in ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate", "gripper")
]
ALOHA_CAMERAS = ["top"]  # the overhead camera, as ACT uses in simulation; left_wrist / right_wrist also exist


def make_config(
    preset: str,
    joint_names: list[str] | None = None,
    camera_names: list[str] | None = None,
    camera_crops: dict[str, list[float]] | None = None,
    **backbone_overrides: object,
) -> RDVLAConfig:
    """A full configuration from a backbone preset ("tiny", "conv" or "paper"). joint_names / camera_names
    None: ALOHA's (14 joints, the top camera); camera_names []: a state-only policy; joint_names []: an error."""
    joint_names = list(ALOHA_JOINTS if joint_names is None else joint_names)
    camera_names = list(ALOHA_CAMERAS if camera_names is None else camera_names)
    if not joint_names:
        raise ValueError("make_config: joint_names is empty: a policy commands at least one joint")
    backbone = BackboneConfig.from_preset(preset, num_cameras=len(camera_names), **backbone_overrides)
    head_sizes = {
        "tiny": {"d_model": 64, "num_heads": 4}, "conv": {"d_model": 64, "num_heads": 4},
        "paper": {"d_model": 896, "num_heads": 8},
    }[preset]  # fmt: skip
    width = backbone.llm_config["hidden_size"] if backbone.llm_config else backbone.llm_hidden
    head = HeadConfig(**head_sizes, backbone_width=width, action_dim=len(joint_names), proprio_dim=len(joint_names))  # type: ignore[arg-type]
    return RDVLAConfig(backbone=backbone, head=head, joint_names=joint_names, camera_names=camera_names,
                       camera_crops=dict(camera_crops or {}))  # fmt: skip
