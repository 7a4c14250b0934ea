"""The weight-tied recurrent core: one block of layers applied r times to the latent scratchpad.

Every iteration:
    x = RMSNorm(gamma_adapt * W_adapt [S_{k-1}; S_pre])          (input injection)
    for each layer: x += SelfAttn_RoPE(x)
                    x += CrossAttn(x -> [latent tokens; proprio token])
                    x += tanh(g) * CrossAttn(x -> vision+task tokens)
                    x += SwiGLU(x)
    S_k = RMSNorm(x)
"""

from __future__ import annotations

import torch
from torch import nn

from rd_vla_ros.model.context import HeadContext
from rd_vla_ros.model.head_config import HeadConfig
from rd_vla_ros.model.layers import Attention, RMSNorm, SwiGLU, rope_tables


class CoreLayer(nn.Module):
    def __init__(self, config: HeadConfig) -> None:
        super().__init__()
        d = config.d_model
        self.self_norm = RMSNorm(d, config.norm_eps)
        self.self_attn = Attention(d, config.num_heads)
        self.cond_norm = RMSNorm(d, config.norm_eps)
        self.cond_attn = Attention(d, config.num_heads)
        self.task_norm = RMSNorm(d, config.norm_eps)
        self.task_attn = Attention(d, config.num_heads)
        self.task_gate = nn.Parameter(torch.zeros(()))  # g: tanh(0) = 0, vision enters gradually
        self.mlp_norm = RMSNorm(d, config.norm_eps)
        self.mlp = SwiGLU(d, config.mlp_ratio * d)

    def forward(
        self, x: torch.Tensor, ctx: HeadContext, index: int, rope: tuple[torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        cond_kv, task_kv = ctx.layer_kv(index, self.cond_attn, self.task_attn)
        x = x + self.self_attn(self.self_norm(x), rope=rope)  # (B, K, D)
        x = x + self.cond_attn(self.cond_norm(x), kv=cond_kv)
        x = x + torch.tanh(self.task_gate) * self.task_attn(self.task_norm(x), kv=task_kv, mask=ctx.task_mask)
        return x + self.mlp(self.mlp_norm(x))


class RecurrentCore(nn.Module):
    """One iteration S_{k-1} -> S_k. The same parameters serve every iteration (weight tying)."""

    def __init__(self, config: HeadConfig) -> None:
        super().__init__()
        d = config.d_model
        self.config = config
        self.adapter = nn.Linear(2 * d, d, bias=False)  # W_adapt
        self.gamma_adapt = nn.Parameter(torch.ones(()))
        self.adapter_norm = RMSNorm(d, config.norm_eps)
        self.layers = nn.ModuleList(CoreLayer(config) for _ in range(config.num_core_layers))
        self.out_norm = RMSNorm(d, config.norm_eps)
        self._rope: tuple[torch.Tensor, torch.Tensor] | None = None

    def rope(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if self._rope is None or self._rope[0].device != device:
            hd = self.config.d_model // self.config.num_heads
            self._rope = rope_tables(self.config.chunk_length, hd, self.config.rope_base, device)
        return self._rope

    def forward(self, state: torch.Tensor, ctx: HeadContext) -> torch.Tensor:
        """state (B, K, D) -> next state (B, K, D)."""
        x = self.adapter_norm(self.gamma_adapt * self.adapter(torch.cat([state, ctx.s_pre], dim=-1)))  # (B, K, D)
        rope = self.rope(x.device)
        for i, layer in enumerate(self.layers):
            x = layer(x, ctx, i, rope)
        return self.out_norm(x)
