"""Prelude: K learned queries read the backbone's mid-layer features once per observation."""

from __future__ import annotations

import torch
from torch import nn

from rd_vla_ros.model.head_config import HeadConfig
from rd_vla_ros.model.layers import Attention, RMSNorm, SwiGLU


class Prelude(nn.Module):
    """S_pre = Block(queries): bidirectional self-attention, cross-attention to mid-layer features, MLP."""

    def __init__(self, config: HeadConfig) -> None:
        super().__init__()
        d = config.d_model
        self.queries = nn.Parameter(torch.zeros(config.chunk_length, d))  # (K, D)
        self.self_norm = RMSNorm(d, config.norm_eps)
        self.self_attn = Attention(d, config.num_heads)
        self.cross_norm = RMSNorm(d, config.norm_eps)
        self.cross_attn = Attention(d, config.num_heads)
        self.mlp_norm = RMSNorm(d, config.norm_eps)
        self.mlp = SwiGLU(d, config.mlp_ratio * d)

    def forward(self, memory: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """memory (B, M, D) mid-layer [task; latent] tokens, mask (B, M) -> S_pre (B, K, D)."""
        x = self.queries.unsqueeze(0).expand(memory.shape[0], -1, -1)  # (B, K, D)
        x = x + self.self_attn(self.self_norm(x))
        x = x + self.cross_attn(self.cross_norm(x), kv=self.cross_attn.project_kv(memory), mask=mask)
        return x + self.mlp(self.mlp_norm(x))  # (B, K, D)
