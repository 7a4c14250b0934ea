"""Configuration of the recurrent-depth action head."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class HeadConfig:
    """Sizes of the action head (defaults: the official code's, at the paper's width D = 896).

    Attributes:
        d_model: head width D.
        backbone_width: width of the backbone features; projected to d_model when different.
        num_heads: attention heads.
        chunk_length: K, learned queries = rows of the action chunk.
        action_dim: A, action size per row (14 for bimanual ALOHA).
        proprio_dim: P, proprioception size (14 for ALOHA).
        num_core_layers: layers in the weight-tied recurrent block.
        mlp_ratio: SwiGLU hidden size = mlp_ratio * D.
        sigma_init: scratchpad init std before the learnable scale gamma_init.
        mean_recurrence: expected training depth; scales the init of output projections.
        rope_base: RoPE frequency base for the self-attention over the K queries.
        norm_eps: RMSNorm epsilon.
    """

    d_model: int = 896
    backbone_width: int = 896
    num_heads: int = 8
    chunk_length: int = 8
    action_dim: int = 14
    proprio_dim: int = 14
    num_core_layers: int = 2
    mlp_ratio: int = 4
    sigma_init: float = 0.632
    mean_recurrence: float = 32.0
    rope_base: float = 10000.0
    norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        for name in (
            "d_model", "backbone_width", "num_heads", "chunk_length", "action_dim", "proprio_dim",
            "num_core_layers", "mlp_ratio",
        ):  # fmt: skip
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"HeadConfig.{name} must be a positive integer, got {value!r}")
        if self.d_model % self.num_heads:
            raise ValueError(f"HeadConfig.d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads})")
        if (self.d_model // self.num_heads) % 2:
            raise ValueError(f"HeadConfig: head dim {self.d_model // self.num_heads} must be even for RoPE")
        for name in ("sigma_init", "mean_recurrence", "rope_base", "norm_eps"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"HeadConfig.{name} must be finite and > 0, got {value!r}")

    @property
    def init_std(self) -> float:
        """sqrt(2 / (5 D)) (the official code's "small init")."""
        return math.sqrt(2.0 / (5.0 * self.d_model))

    @property
    def out_proj_std(self) -> float:
        """Output projections: init_std / sqrt(mean_recurrence * num_core_layers)."""
        return self.init_std / math.sqrt(self.mean_recurrence * self.num_core_layers)
