"""Coda: reads the final scratchpad out into an action chunk."""

from __future__ import annotations

import torch
from torch import nn

from rd_vla_ros.model.context import HeadContext
from rd_vla_ros.model.head_config import HeadConfig
from rd_vla_ros.model.layers import Attention, RMSNorm, SwiGLU


class Coda(nn.Module):
    """One block (self-attention, cross-attention to last-layer features, MLP), RMSNorm, Linear -> (K, A)."""

    def __init__(self, config: HeadConfig) -> None:
        super().__init__()
        d = config.d_model
        self.self_norm = RMSNorm(d, config.norm_eps)
        self.self_attn = Attention(d, config.num_heads)
        self.cross_norm = RMSNorm(d, config.norm_eps)
        self.cross_attn = Attention(d, config.num_heads)
        self.mlp_norm = RMSNorm(d, config.norm_eps)
        self.mlp = SwiGLU(d, config.mlp_ratio * d)
        self.ln_f = RMSNorm(d, config.norm_eps)
        self.action_proj = nn.Linear(d, config.action_dim)

    def forward(self, state: torch.Tensor, ctx: HeadContext) -> torch.Tensor:
        """state (B, K, D) -> actions (B, K, A) (normalised units)."""
        x = state + self.self_attn(self.self_norm(state))
        x = x + self.cross_attn(self.cross_norm(x), kv=ctx.coda_keys(self.cross_attn), mask=ctx.coda_mask)
        x = x + self.mlp(self.mlp_norm(x))
        return self.action_proj(self.ln_f(x))  # (B, K, A)
