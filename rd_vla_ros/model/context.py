"""The static conditioning of one observation, as the recurrent head consumes it.

Built once per observation by `RecurrentDepthHead.encode_context`. With `cached=True` (default) every
cross-attention's keys/values are projected here, once, and reused by every core iteration; with
`cached=False` the raw conditioning tokens are kept and projected again at every use (the reference
path the tests compare against).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from rd_vla_ros.model.layers import KV, Attention


@dataclass
class HeadContext:
    """Conditioning tokens (projected to the head width) and their cached keys/values.

    Attributes:
        s_pre: (B, K, D) prelude output, injected into every core iteration.
        cond: (B, L + 1, D) [last-layer latent tokens; proprio token] (ungated cross-attention).
        task: (B, N, D) last-layer vision+task tokens (tanh-gated cross-attention, coda keys).
        task_mask: (B, N) bool, True = real token, or None.
        coda_memory: (B, N + L, D) [task; latent] last-layer tokens the coda attends to.
        coda_mask: (B, N + L) bool or None.
        cached: whether keys/values below were precomputed.
        core_kv: per core layer, (cond K/V, task K/V); empty when not cached.
        coda_kv: coda cross-attention K/V or None when not cached.
    """

    s_pre: torch.Tensor
    cond: torch.Tensor
    task: torch.Tensor
    task_mask: torch.Tensor | None
    coda_memory: torch.Tensor
    coda_mask: torch.Tensor | None
    cached: bool
    core_kv: list[tuple[KV, KV]] = field(default_factory=list)
    coda_kv: KV | None = None

    @property
    def batch_size(self) -> int:
        return self.s_pre.shape[0]

    def layer_kv(self, index: int, cond_attn: Attention, task_attn: Attention) -> tuple[KV, KV]:
        """Keys/values for core layer `index`: the cached ones, or projected now."""
        if self.cached:
            return self.core_kv[index]
        return cond_attn.project_kv(self.cond), task_attn.project_kv(self.task)

    def coda_keys(self, attn: Attention) -> KV:
        if self.cached and self.coda_kv is not None:
            return self.coda_kv
        return attn.project_kv(self.coda_memory)
