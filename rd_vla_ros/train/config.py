"""TrainConfig: everything a training run needs, declared once; each field is the `rd-vla train`
option of the same name (rd_vla_ros.options) and the run stores it beside its checkpoint."""

from __future__ import annotations

import math
from dataclasses import dataclass

from rd_vla_ros.options import option
from rd_vla_ros.runtime.camera_input import parse_crops


@dataclass
class TrainConfig:
    """Everything a training run needs; stored with the checkpoint."""

    bags: list[str] = option(help="rosbag2 recordings (directories or .mcap/.db3 files)", positional=True)
    out: str = option(help="run directory: checkpoint/, tb/, cache/, train_summary.json")
    steps: int = option(20_000, "optimizer steps")
    batch_size: int = option(32, "samples per step (per process)")
    lr: float = option(3e-4, "peak learning rate")
    weight_decay: float = option(1e-4, "AdamW weight decay")
    warmup_steps: int = option(500, "linear learning-rate warm-up")
    min_lr_ratio: float = option(0.1, "the cosine schedule ends at this share of --lr")
    grad_clip: float = option(1.0, "gradient norm clip")
    seed: int = option(0, "seed of the initial weights, batches and depths")
    preset: str = option("tiny", "model size", choices=("tiny", "conv", "paper"))
    robot: str | None = option(None, "the robot: a robot YAML, a .urdf file, or a file name in config/ (default: "
                               "the --params file's robot_description, aloha_bimanual.yaml)")  # fmt: skip
    cameras: list[str] | None = option(None, "cameras the policy sees, in order (default: the robot file's cameras, "
                                       "else the --params file's camera_names, else the topic map's)",
                                       metavar="NAME")  # fmt: skip
    crops: dict[str, list[float]] | None = option(
        None, "region of a camera's frame the policy sees, as fractions (left, top, right, bottom); repeat per "
        "camera (default: whole frames)", flag="--crop", metavar="CAMERA=L,T,R,B", collect=parse_crops)  # fmt: skip
    train_backbone: bool | None = option(None, "train the backbone too (default: yes unless it has pretrained "
                                         "weights)")  # fmt: skip
    depth_mean: float | None = option(None, "mean training recurrence (default: the paper's 32)")
    shift: int = option(4, "random-shift augmentation in pixels (0 = off)")
    patch_size: int | None = option(None, "vision patch size in pixels; smaller = more vision tokens per camera "
                                    "(default: the preset's, tiny 16)")  # fmt: skip
    proprio_dropout: float = option(0.0, "share of samples trained without joint positions (forces use of the "
                                    "cameras)")  # fmt: skip
    proprio_noise: float = option(0.0, "Gaussian noise on the joint positions the policy sees (rad; targets stay "
                                  "clean): stops it from reading the trajectory off the joints instead of the "
                                  "cameras", metavar="STD")  # fmt: skip
    log_every: int = option(50, "steps between logged losses")
    save_every: int = option(1000, "steps between checkpoints")
    topic_map: str | None = option(None, "topic map YAML (default: config/topic_map_aloha.yaml)")
    params: str | None = option(None, "node parameter file: cameras, robot, age limits (default: "
                                "config/rd_vla_node.yaml)")  # fmt: skip
    cache_dir: str | None = option(None, "decoded-episode cache (default: OUT/cache)")

    def __post_init__(self) -> None:
        if not self.bags:
            raise ValueError("give at least one bag to train on")
        for name in ("steps", "batch_size", "log_every", "save_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (math.isfinite(self.proprio_noise) and self.proprio_noise >= 0):
            raise ValueError(f"proprio_noise must be finite and >= 0, got {self.proprio_noise}")
        if not 0.0 <= self.proprio_dropout < 1.0:
            raise ValueError(f"proprio_dropout must be in [0, 1), got {self.proprio_dropout}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
