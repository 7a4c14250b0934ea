"""Optimizer state stored as safetensors + JSON (never pickled), for resumable training."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file


def save_optimizer(optimizer: torch.optim.Optimizer, directory: Path, meta: dict[str, Any]) -> None:
    """optimizer.safetensors (every tensor of the state) + train_state.json (scalars, step, meta)."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, entries in state["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[key] = value
    directory.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(directory / "optimizer.safetensors.tmp"))
    (directory / "optimizer.safetensors.tmp").replace(directory / "optimizer.safetensors")
    payload = {"param_groups": state["param_groups"], "scalars": scalars, **meta}
    (directory / "train_state.json.tmp").write_text(json.dumps(payload, indent=2) + "\n")
    (directory / "train_state.json.tmp").replace(directory / "train_state.json")


def load_optimizer(optimizer: torch.optim.Optimizer, directory: Path) -> dict[str, Any]:
    """Restore the optimizer saved by save_optimizer; returns the JSON payload (step, meta)."""
    payload = json.loads((directory / "train_state.json").read_text())
    tensors = load_file(str(directory / "optimizer.safetensors"))
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    for pid, entries in payload["scalars"].items():
        state.setdefault(int(pid), {}).update(entries)
    optimizer.load_state_dict({"state": state, "param_groups": payload["param_groups"]})
    return payload
