"""Checkpoints: model.safetensors (weights + normalisation statistics) and config.json.

Nothing is ever unpickled: weights are safetensors, the configuration is JSON with a format version.
Loading checks the format version, rebuilds the model from the configuration, and compares every
tensor name and shape with the file before loading, so a mismatch is reported by name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from rd_vla_ros.model.config import CHECKPOINT_FORMAT_VERSION, RDVLAConfig
from rd_vla_ros.model.serialization import from_dict, to_dict

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


class CheckpointError(ValueError):
    """A checkpoint that does not fit the code or the model; the message names the mismatch."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint made for other joints or cameras than the robot it is asked to drive."""


def names(items: list[str]) -> str:
    """['a', 'b'] -> '[a, b]' (one line, no quotes)."""
    return "[" + ", ".join(items) + "]"


def check_fit(
    config: RDVLAConfig,
    joint_names: list[str],
    camera_names: list[str] | None = None,
    robot: str = "robot",
    cameras_from: str = "configured",
) -> None:
    """CheckpointMismatchError (one line, both lists and the fix) unless the checkpoint was made for exactly
    these joints, in this order, and (when given) these cameras."""
    if list(joint_names) != list(config.joint_names):
        order = " (the same joints in another order)" if sorted(joint_names) == sorted(config.joint_names) else ""
        raise CheckpointMismatchError(
            f"checkpoint joints {names(config.joint_names)} != {robot} joints {names(list(joint_names))}{order}: "
            "use a checkpoint made for this robot (rd-vla init-checkpoint / train --robot ROBOT) or the robot "
            "description the checkpoint was made for"
        )
    if camera_names is not None and list(camera_names) != list(config.camera_names):
        raise CheckpointMismatchError(
            f"checkpoint cameras {names(config.camera_names)} != {cameras_from} cameras {names(list(camera_names))}: "
            "configure the checkpoint's cameras in its order (node: camera_names / camera_topics; tools: --params "
            "or the robot file's cameras), or train a checkpoint for these cameras"
        )


def save_checkpoint(model: nn.Module, config: RDVLAConfig, directory: str | Path, extra: dict | None = None) -> Path:
    """Write `directory/model.safetensors` and `directory/config.json`; returns the directory.

    `extra` (JSON-serialisable) is stored in config.json under "extra" (e.g. training step, data).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(
        _unshare(state), str(directory / WEIGHTS_NAME), metadata={"format_version": str(CHECKPOINT_FORMAT_VERSION)}
    )
    payload = {"format_version": CHECKPOINT_FORMAT_VERSION, "config": to_dict(config), "extra": extra or {}}
    tmp = directory / (CONFIG_NAME + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(directory / CONFIG_NAME)
    return directory


def read_config(directory: str | Path) -> tuple[RDVLAConfig, dict[str, Any]]:
    """Parse config.json; returns (config, extra). Raises CheckpointError with the reason."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist (a checkpoint directory holds {CONFIG_NAME} and {WEIGHTS_NAME})")
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path} is not valid JSON: {err}") from err
    version = payload.get("format_version")
    if version != CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format_version {version!r}, this code reads version {CHECKPOINT_FORMAT_VERSION}"
        )
    try:
        config = from_dict(RDVLAConfig, payload.get("config"), where="config")
    except ValueError as err:
        raise CheckpointError(f"{path}: {err}") from err
    return config, payload.get("extra") or {}


def load_weights(model: nn.Module, directory: str | Path, device: str | torch.device = "cpu") -> None:
    """Load model.safetensors into `model`, after checking every name and shape."""
    path = Path(directory) / WEIGHTS_NAME
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist")
    expected = model.state_dict()
    with safe_open(str(path), framework="pt", device=str(device)) as f:
        names = set(f.keys())
        missing = sorted(set(expected) - names)
        unexpected = sorted(names - set(expected))
        wrong = [
            f"{k}: file {tuple(f.get_slice(k).get_shape())} vs model {tuple(expected[k].shape)}"
            for k in sorted(names & set(expected))
            if tuple(f.get_slice(k).get_shape()) != tuple(expected[k].shape)
        ]
        if missing or unexpected or wrong:
            raise CheckpointError(
                f"{path} does not match the model built from its config: "
                + "; ".join(
                    part
                    for part in (
                        f"missing {_head(missing)}" if missing else "",
                        f"unexpected {_head(unexpected)}" if unexpected else "",
                        f"shape mismatch {_head(wrong)}" if wrong else "",
                    )
                    if part
                )
            )
        state = {k: f.get_tensor(k) for k in names}
    model.load_state_dict(state, strict=True)


def _unshare(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses tensors that share memory (tied embeddings): store copies."""
    seen: dict[int, str] = {}
    out = {}
    for k, v in state.items():
        ptr = v.untyped_storage().data_ptr() if v.numel() else -1
        out[k] = v.clone() if ptr in seen and ptr != -1 else v
        seen.setdefault(ptr, k)
    return out


def _head(items: list[str], n: int = 5) -> str:
    more = f" (+{len(items) - n} more)" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def save_policy(policy: nn.Module, directory: str | Path, extra: dict | None = None) -> Path:
    """Save an RDVLAPolicy (weights, normalisation statistics, configuration)."""
    return save_checkpoint(policy, policy.config, directory, extra)


def load_policy(directory: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild an RDVLAPolicy from `directory` (no pretrained weights are read: all come from the file)."""
    from rd_vla_ros.model.backbone import VisionLanguageBackbone
    from rd_vla_ros.model.policy import RDVLAPolicy

    config, _ = read_config(directory)
    try:
        policy = RDVLAPolicy(config, backbone=VisionLanguageBackbone(config.backbone, load_pretrained=False))
    except ValueError as err:
        raise CheckpointError(f"{directory}: cannot build the model from config.json: {err}") from err
    load_weights(policy, directory)
    return policy.to(device).eval()


def init_checkpoint(
    out: str | Path,
    preset: str,
    seed: int,
    joint_names: list[str] | None = None,
    cameras: list[str] | None = None,
    robot_name: str = "aloha_bimanual",
) -> Path:
    """An UNTRAINED policy (random weights, identity normalisation) for tests, demos and benchmarks:
    `joint_names` (default ALOHA's), `cameras` (default ALOHA's top camera; [] = state-only)."""
    from rd_vla_ros.model.config import make_config
    from rd_vla_ros.model.policy import RDVLAPolicy

    torch.manual_seed(seed)
    policy = RDVLAPolicy(make_config(preset, joint_names, cameras))
    extra = {"trained": False, "seed": seed, "preset": preset, "robot": robot_name}
    return save_policy(policy, out, extra=extra)


def describe_checkpoint(directory: str | Path) -> str:
    """A checkpoint's configuration in a few lines (reads config.json only)."""
    config, extra = read_config(directory)
    return (
        f"joints: {config.joint_names}\ncameras: {config.camera_names}\nchunk: {config.head.chunk_length} x "
        f"{config.control_period_s} s\nhead: D={config.head.d_model}, {config.head.num_core_layers} tied layers\n"
        f"backbone: {config.backbone.vision_encoders}, image {config.backbone.image_size} px\n"
        f"inference: {config.inference}\nextra: {extra}"
    )
