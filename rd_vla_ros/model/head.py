"""The recurrent-depth action head: prelude -> weight-tied core iterated r times -> coda.

    ctx = head.encode_context(features, proprio)      # once per observation: S_pre, cached K/V
    S_0 = head.initialize_state(ctx)                  # truncated-normal scratchpad
    S_0 = shift_state(S_prev, s, S_0)                 # or warm: the last chunk's S_k* moved by s rows
    S_k = head.core_step(S_{k-1}, ctx)                # one iteration (same weights every time)
    a_k = head.predict_from_latents(S_k, ctx)         # (B, K, A) chunk from any iterate

Training uses `forward` (fixed r, truncated BPTT); inference uses `iterate` (adaptive halting with
per-sample masks and memory constant in the number of iterations).
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import torch
from torch import nn

from rd_vla_ros.model.coda import Coda
from rd_vla_ros.model.context import HeadContext
from rd_vla_ros.model.core import RecurrentCore
from rd_vla_ros.model.cuda_graph import HeadGraphs, StepFn
from rd_vla_ros.model.features import BackboneFeatures
from rd_vla_ros.model.halting import HaltingCriterion
from rd_vla_ros.model.head_config import HeadConfig
from rd_vla_ros.model.prelude import Prelude


@dataclass
class HeadOutput:
    """Adaptive inference result (all tensors of fixed size, whatever the number of iterations).

    Attributes:
        actions: (B, K, A) chunk at each sample's k* (normalised units).
        iterations: (B,) int64 k*.
        converged: (B,) bool, True when the criterion fired (False = stopped at max_iterations).
        residual_trace: (B, max_iterations) residual after each iteration; NaN at k = 1 and after k*.
        final_residual: (B,) residual at k* (NaN when k* = 1).
        state: (B, K, D) the scratchpad S_k* the chunk was read from (None where a runtime does not
            return it), what a warm start carries to the next chunk.
    """

    actions: torch.Tensor
    iterations: torch.Tensor
    converged: torch.Tensor
    residual_trace: torch.Tensor
    final_residual: torch.Tensor
    state: torch.Tensor | None = None

    def to(self, device: torch.device) -> HeadOutput:
        """The same result on `device` (one copy per field; no-op where it already is)."""
        fields = (self.actions, self.iterations, self.converged, self.residual_trace, self.final_residual, self.state)
        return HeadOutput(*(None if t is None else t.to(device) for t in fields))


class RecurrentDepthHead(nn.Module):
    def __init__(self, config: HeadConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.feature_proj: nn.Module = (
            nn.Identity() if config.backbone_width == d else nn.Linear(config.backbone_width, d, bias=False)
        )
        self.proprio_proj = nn.Sequential(nn.Linear(config.proprio_dim, d), nn.GELU(), nn.Linear(d, d))
        self.prelude = Prelude(config)
        self.core = RecurrentCore(config)
        self.coda = Coda(config)
        self.gamma_init = nn.Parameter(torch.ones(()))  # learnable scale of the scratchpad noise
        self.graphs = HeadGraphs()  # CUDA graphs of one iteration (iterate(cuda_graphs=True)), captured lazily
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """std sqrt(2/(5D)) everywhere; output projections further / sqrt(mean_recurrence * core layers)."""
        std, out_std = self.config.init_std, self.config.out_proj_std
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear):
                is_out = name.endswith(("o_proj", "down_proj"))
                nn.init.trunc_normal_(module.weight, std=out_std if is_out else std, a=-3 * std, b=3 * std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        nn.init.trunc_normal_(self.prelude.queries, std=std, a=-3 * std, b=3 * std)

    # ------------------------------------------------------------------------------ conditioning
    def encode_context(self, features: BackboneFeatures, proprio: torch.Tensor, cached: bool = True) -> HeadContext:
        """Project the observation's features once. proprio (B, P), normalised."""
        mid = self.feature_proj(torch.cat([features.mid_task, features.mid_latent], dim=1))  # (B, N+L, D)
        task = self.feature_proj(features.last_task)  # (B, N, D)
        latent = self.feature_proj(features.last_latent)  # (B, L, D)
        proprio_token = self.proprio_proj(proprio).unsqueeze(1)  # (B, 1, D)
        memory_mask = _pad_mask(features.task_mask, features.mid_latent.shape[1])  # (B, N+L) or None
        s_pre = self.prelude(mid, memory_mask)  # (B, K, D)
        ctx = HeadContext(
            s_pre=s_pre,
            cond=torch.cat([latent, proprio_token], dim=1),  # (B, L+1, D)
            task=task,
            task_mask=features.task_mask,
            coda_memory=torch.cat([task, latent], dim=1),  # (B, N+L, D)
            coda_mask=memory_mask,
            cached=cached,
        )
        if cached:
            ctx.core_kv = [
                (layer.cond_attn.project_kv(ctx.cond), layer.task_attn.project_kv(ctx.task))
                for layer in self.core.layers
            ]
            ctx.coda_kv = self.coda.cross_attn.project_kv(ctx.coda_memory)
        return ctx

    def initialize_state(self, ctx: HeadContext, generator: torch.Generator | None = None) -> torch.Tensor:
        """S_0 ~ TruncNormal(0, gamma_init * sigma_init) clipped at +-3 sigma: (B, K, D)."""
        shape = (ctx.batch_size, self.config.chunk_length, self.config.d_model)
        z = torch.empty(shape, device=ctx.s_pre.device, dtype=ctx.s_pre.dtype)
        nn.init.trunc_normal_(z, mean=0.0, std=1.0, a=-3.0, b=3.0, generator=generator)
        return z * (self.gamma_init * self.config.sigma_init)

    def core_step(self, state: torch.Tensor, ctx: HeadContext) -> torch.Tensor:
        return self.core(state, ctx)  # (B, K, D)

    def predict_from_latents(self, state: torch.Tensor, ctx: HeadContext) -> torch.Tensor:
        return self.coda(state, ctx)  # (B, K, A)

    # ---------------------------------------------------------------------------------- training
    def forward(
        self,
        features: BackboneFeatures,
        proprio: torch.Tensor,
        num_iterations: int,
        grad_iterations: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Chunk after `num_iterations` core iterations (B, K, A).

        Truncated BPTT: the first `num_iterations - grad_iterations` iterations run without autograd
        (and their result is detached), so gradients reach the parameters only through the last
        `grad_iterations` (None = all of them: full BPTT, memory linear in r).
        """
        if num_iterations < 1:
            raise ValueError(f"num_iterations must be >= 1, got {num_iterations}")
        grad_iterations = num_iterations if grad_iterations is None else min(grad_iterations, num_iterations)
        if grad_iterations < 1:
            raise ValueError(f"grad_iterations must be >= 1, got {grad_iterations}")
        ctx = self.encode_context(features, proprio)
        state = self.initialize_state(ctx, generator)
        if grad_iterations < num_iterations:
            with torch.no_grad():
                for _ in range(num_iterations - grad_iterations):
                    state = self.core_step(state, ctx)
            state = state.detach()
        for _ in range(grad_iterations):
            state = self.core_step(state, ctx)
        return self.predict_from_latents(state, ctx)

    # --------------------------------------------------------------------------------- inference
    @torch.no_grad()
    def iterate(
        self,
        features: BackboneFeatures | HeadContext,
        proprio: torch.Tensor | None,
        criterion: HaltingCriterion,
        min_iterations: int = 1,
        max_iterations: int = 32,
        generator: torch.Generator | None = None,
        initial_state: torch.Tensor | None = None,
        cuda_graphs: bool = False,
        previous_state: torch.Tensor | None = None,
        shift: int = 0,
    ) -> HeadOutput:
        """Adaptive inference: iterate until each sample's criterion fires (after min_iterations) or
        max_iterations. A sample that halted is frozen: its state and chunk stop changing while the
        rest of the batch continues. Only the current and previous iterate are kept in memory.

        cuda_graphs: replay one captured CUDA graph of the iteration (rd_vla_ros.model.cuda_graph)
        instead of launching its kernels one by one; eager, with one warning, where that cannot be.
        S_0 is `initial_state` when given, else noise from `generator`; with `previous_state` (B, K, D),
        the final scratchpad of the chunk planned `shift` rows earlier, the noise is warm-started by
        `shift_state` (the rows that chunk already planned start from its plan)."""
        if not 1 <= min_iterations <= max_iterations:
            raise ValueError(f"need 1 <= min_iterations <= max_iterations, got {min_iterations}, {max_iterations}")
        ctx = features if isinstance(features, HeadContext) else self.encode_context(features, proprio)
        state = self.initialize_state(ctx, generator) if initial_state is None else initial_state  # (B, K, D)
        if previous_state is not None:
            state = shift_state(previous_state, shift, state)
        step = self.graphs.step_fn(self._iteration, state, ctx, self._weights()) if cuda_graphs else None
        if step is None:
            step = functools.partial(self._iteration, ctx=ctx)
        return adaptive_loop(step, state, criterion, min_iterations, max_iterations)

    def _iteration(self, state: torch.Tensor, ctx: HeadContext) -> tuple[torch.Tensor, torch.Tensor]:
        """S_{k-1} (B, K, D) -> S_k (B, K, D), a_k (B, K, A)."""
        new_state = self.core_step(state, ctx)  # (B, K, D)
        return new_state, self.predict_from_latents(new_state, ctx)  # (B, K, A)

    def _weights(self) -> tuple[int, ...]:
        """Where the head's parameters and buffers live now (a captured graph reads these addresses)."""
        return tuple(t.data_ptr() for t in itertools.chain(self.parameters(), self.buffers()))


def shift_state(previous: torch.Tensor, shift: int, fresh: torch.Tensor) -> torch.Tensor:
    """A warm-started scratchpad: previous (B, K, D) final state of the last chunk, planned `shift`
    control periods before this one; fresh (B, K, D) this chunk's cold-start noise.

    Latent token i is chunk row i: it is the position of query i (RoPE in the core's self-attention,
    S_pre's row i in the input injection) and the coda reads row i from it. The previous chunk's row
    i + shift targets the instant of this chunk's row i, so token i starts from the previous token
    i + shift; the last `shift` tokens plan instants no earlier chunk covered and start from `fresh`,
    as a cold start would. shift >= K leaves nothing to carry (returns `fresh`)."""
    if shift < 0:
        raise ValueError(f"shift must be >= 0, got {shift}")
    k = fresh.shape[1]
    if shift >= k:
        return fresh
    return torch.cat([previous[:, shift:].to(fresh), fresh[:, k - shift :]], dim=1)  # (B, K, D)


def adaptive_loop(
    step: StepFn, state: torch.Tensor, criterion: HaltingCriterion, min_iterations: int, max_iterations: int
) -> HeadOutput:
    """Iterate `step` (S_{k-1} -> (S_k, a_k)) from S_0 until each sample's criterion fires (after
    min_iterations) or max_iterations. A sample that halted is frozen: its state and chunk stop
    changing while the rest of the batch continues. Only the current and previous iterate are kept.
    Shared by the torch head and the onnxruntime runner (rd_vla_ros.export.runtime)."""
    if not 1 <= min_iterations <= max_iterations:
        raise ValueError(f"need 1 <= min_iterations <= max_iterations, got {min_iterations}, {max_iterations}")
    b = state.shape[0]
    device = state.device
    done = torch.zeros(b, dtype=torch.bool, device=device)
    converged = torch.zeros(b, dtype=torch.bool, device=device)
    iterations = torch.zeros(b, dtype=torch.long, device=device)
    trace = torch.full((b, max_iterations), math.nan, device=device)  # (B, max_it)
    state, actions = step(state)  # k = 1: no previous chunk to compare with
    iterations.fill_(1)
    for k in range(2, max_iterations + 1):
        new_state, new_actions = step(state)  # (B, K, D), (B, K, A)
        active = ~done  # (B,)
        residual = criterion.residual(actions, new_actions, state, new_state)  # (B,)
        keep = active.view(b, 1, 1)
        state = torch.where(keep, new_state, state)
        actions = torch.where(keep, new_actions, actions)
        trace[:, k - 1] = torch.where(active, residual, trace[:, k - 1])
        iterations = torch.where(active, k, iterations)
        if k >= min_iterations:
            fired = active & criterion.converged(residual)  # NaN compares False
            converged |= fired
            done |= fired
        if bool(done.all()):
            break
    final = trace.gather(1, (iterations - 1).unsqueeze(1)).squeeze(1)  # (B,)
    return HeadOutput(actions, iterations, converged, trace, final, state)


def _pad_mask(task_mask: torch.Tensor | None, num_latent: int) -> torch.Tensor | None:
    if task_mask is None:
        return None
    ones = torch.ones(task_mask.shape[0], num_latent, dtype=torch.bool, device=task_mask.device)
    return torch.cat([task_mask, ones], dim=1)  # (B, N+L)
