"""One training step of RD-VLA: randomized depth, truncated BPTT, L1 on the chunk, AdamW."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from rd_vla_ros.model.policy import RDVLAPolicy


@dataclass
class OptimizerConfig:
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ValueError(f"OptimizerConfig.lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise ValueError(f"OptimizerConfig.weight_decay must be >= 0, got {self.weight_decay}")
        if not self.grad_clip > 0:
            raise ValueError(f"OptimizerConfig.grad_clip must be > 0, got {self.grad_clip}")


def make_optimizer(policy: nn.Module, config: OptimizerConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; no weight decay on norms, gates, scales and biases."""
    decay, no_decay = [], []
    for _, p in policy.named_parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas)


def train_step(
    policy: RDVLAPolicy,
    optimizer: torch.optim.Optimizer,
    batch: dict[str, Any],
    step: int,
    rank: int = 0,
    grad_clip: float = 1.0,
) -> dict[str, float]:
    """Forward (depth drawn from (step, rank)), backward, clip, AdamW step. Returns the loss info."""
    policy.train()
    optimizer.zero_grad(set_to_none=True)
    loss, info = policy(batch, step=step, rank=rank)
    loss.backward()
    trainable = [p for p in policy.parameters() if p.requires_grad]
    info["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(trainable, grad_clip))
    optimizer.step()
    return info
