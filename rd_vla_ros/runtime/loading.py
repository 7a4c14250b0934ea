"""Load a checkpoint into a PolicyRunner on the chosen runtime (torch or onnxruntime) and device.

The heavy libraries load here, not when the node starts: transformers (the backbone) for the torch
runtime, onnxruntime for that one."""

from __future__ import annotations

from pathlib import Path

import torch

from rd_vla_ros.model.config import InferenceSettings
from rd_vla_ros.runtime.runner import PolicyRunner

RUNTIMES = ("torch", "onnxruntime")


def load_runner(
    directory: Path,
    joint_names: list[str],
    camera_names: list[str],
    settings: InferenceSettings,
    runtime: str = "torch",
    device: str = "cpu",
    backbone_dtype: str = "float32",
    threads: int = 1,
) -> tuple[PolicyRunner, str]:
    """The runner and a one-line name of what runs it (e.g. "torch cpu", "onnxruntime CPUExecutionProvider
    (host loop)"). Raises CheckpointError, OSError, ValueError, RuntimeError or ImportError with a reason."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}, got '{runtime}'")
    torch_device = torch.device(device)
    if runtime == "onnxruntime":
        from rd_vla_ros.export.runtime import OnnxPolicy

        providers = ["CUDAExecutionProvider"] if torch_device.type == "cuda" else []
        policy = OnnxPolicy(directory, [*providers, "CPUExecutionProvider"], threads)
        loop = " (loop graph for action_mse/fixed depth)" if policy.loop else " (host loop)"
        name = f"onnxruntime {','.join(policy.providers)}{loop}"
    else:
        from rd_vla_ros.model.checkpoint import load_policy  # the model code (transformers) loads here

        policy = load_policy(directory, torch_device).half_backbone(getattr(torch, backbone_dtype))
        name = f"torch {torch_device}" + (f" (backbone {backbone_dtype})" if backbone_dtype != "float32" else "")
    return PolicyRunner(policy, joint_names, camera_names, settings), name
