"""RDVLAPolicy: the one policy surface used by the node, the trainer, the replay tool and the exporter.

    loss, info = policy(batch, step=step)            # training: randomized depth, truncated BPTT, L1
    result = policy.predict_action_chunk(obs)        # inference: backbone once, adaptive head
    encoded = policy.encode(obs); policy.run_head(encoded, settings)   # re-run only the head (sweeps)
    action = policy.select_action(obs); policy.reset()                 # one action per control step

Observation / batch keys:
    "images":      (B, C, 3, H, W) float in [0, 1], cameras in config.camera_names order
    "proprio":     (B, P) joint positions in config.joint_names order (raw units)
    "instruction": list[str] of length B   (or "instruction_ids" (B, T) long + "instruction_mask" (B, T) bool)
    "actions":     (B, K, A) target chunk, raw units (training only)
    "action_is_pad": (B, K) bool, rows past the end of an episode (training only, optional)
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rd_vla_ros.model.backbone import VisionLanguageBackbone
from rd_vla_ros.model.config import InferenceSettings, RDVLAConfig
from rd_vla_ros.model.depth import sample_depth, split_depth
from rd_vla_ros.model.features import BackboneFeatures
from rd_vla_ros.model.halting import make_criterion
from rd_vla_ros.model.head import RecurrentDepthHead
from rd_vla_ros.model.horizon import make_schedule
from rd_vla_ros.model.normalization import Normalizer


@dataclass
class EncodedObservation:
    """What the backbone produced for a batch of observations (computed once, reused by the head)."""

    features: BackboneFeatures
    proprio: torch.Tensor  # (B, P) normalised
    backbone_latency_s: float


@dataclass
class ChunkPrediction:
    """The result of one inference.

    Attributes:
        actions: (B, K, A) action chunk in raw units (joint positions).
        iterations: (B,) k*, core iterations run per sample.
        converged: (B,) True when halting fired before max_iterations (False for fixed depth).
        residual_trace: (B, max_iterations) halting residual after each iteration (NaN where not run).
        final_residual: (B,) residual at k*.
        execution_horizon: (B,) rows to execute before re-planning.
        settings: the InferenceSettings used.
        backbone_latency_s / head_latency_s: wall-clock seconds (whole batch).
        state: (B, K, D) the final scratchpad S_k* (what a warm start carries to the next chunk; None
            where the runtime does not return it).
    """

    actions: torch.Tensor
    iterations: torch.Tensor
    converged: torch.Tensor
    residual_trace: torch.Tensor
    final_residual: torch.Tensor
    execution_horizon: torch.Tensor
    settings: InferenceSettings
    backbone_latency_s: float
    head_latency_s: float
    state: torch.Tensor | None = None


class RDVLAPolicy(nn.Module):
    """Backbone (once per observation) + recurrent-depth head + normalisation of proprio and actions."""

    def __init__(self, config: RDVLAConfig, backbone: VisionLanguageBackbone | None = None) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone if backbone is not None else VisionLanguageBackbone(config.backbone)
        self.head = RecurrentDepthHead(config.head)
        self.proprio_normalizer = Normalizer(config.head.proprio_dim)
        self.action_normalizer = Normalizer(config.head.action_dim)
        self._queue: deque[torch.Tensor] = deque()
        self._train_step = 0

    # ----------------------------------------------------------------------------------- inputs
    @property
    def device(self) -> torch.device:
        return next(self.head.parameters()).device

    def _instruction_tensors(self, obs: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        if "instruction_ids" in obs:
            return obs["instruction_ids"].to(self.device), obs["instruction_mask"].to(self.device)
        ids, mask = self.backbone.encode_instructions(list(obs["instruction"]))
        return ids.to(self.device), mask.to(self.device)

    def encode(self, obs: dict[str, Any]) -> EncodedObservation:
        """Run the backbone once for a batch of observations."""
        start = time.perf_counter()
        ids, mask = self._instruction_tensors(obs)
        backbone_dtype = self.backbone.latent_tokens.dtype  # float32, or bfloat16 after half_backbone()
        images = obs["images"].to(self.device, backbone_dtype)  # (B, C, 3, H, W)
        trainable = self.training and any(p.requires_grad for p in self.backbone.parameters())
        with torch.set_grad_enabled(trainable):
            features = self.backbone(images, ids, mask)
        if backbone_dtype != torch.float32:
            features = features.float()  # the head, its cached keys/values and halting stay float32
        proprio = self.proprio_normalizer.normalize(obs["proprio"].to(self.device, torch.float32))  # (B, P)
        return EncodedObservation(features, proprio, time.perf_counter() - start)

    def half_backbone(self, dtype: torch.dtype = torch.bfloat16) -> RDVLAPolicy:
        """Run the backbone (by far the larger part, once per observation) in `dtype` for inference;
        the recurrent head stays float32, so halting sees the same residual scale. Returns self."""
        if dtype not in (torch.float32, torch.bfloat16, torch.float16):
            raise ValueError(f"backbone dtype must be float32, bfloat16 or float16, got {dtype}")
        self.backbone.to(dtype)
        return self

    # --------------------------------------------------------------------------------- training
    def forward(self, batch: dict[str, Any], step: int | None = None, rank: int = 0) -> tuple[torch.Tensor, dict]:
        """L1 loss on the normalised chunk at a randomized depth with truncated BPTT.

        The depth r is drawn from (step, rank) (see rd_vla_ros.model.depth); gradients flow through
        the last `config.depth.tbptt_depth` iterations only.
        """
        if step is None:
            step = self._train_step
        self._train_step = step + 1
        encoded = self.encode(batch)
        if "proprio_keep" in batch:  # proprio dropout: these samples see the normalised mean (zeros)
            keep = batch["proprio_keep"].to(self.device, torch.float32).unsqueeze(1)  # (B, 1)
            encoded = EncodedObservation(encoded.features, encoded.proprio * keep, encoded.backbone_latency_s)
        depth = sample_depth(self.config.depth, step, rank)
        no_grad_iterations, grad_iterations = split_depth(self.config.depth, depth)
        # the scratchpad noise, like the depth, is a function of (step, rank): resumable, reproducible
        noise = torch.Generator(device=self.device).manual_seed(1_000_003 * step + rank)
        pred = self.head(
            encoded.features, encoded.proprio, num_iterations=depth, grad_iterations=grad_iterations, generator=noise
        )
        target = self.action_normalizer.normalize(batch["actions"].to(self.device, torch.float32))  # (B, K, A)
        l1 = F.l1_loss(pred, target, reduction="none")  # (B, K, A)
        if "action_is_pad" in batch:
            valid = ~batch["action_is_pad"].to(self.device)  # (B, K)
            loss = (l1 * valid.unsqueeze(-1)).sum() / (valid.sum() * l1.shape[-1]).clamp_min(1)
        else:
            loss = l1.mean()
        info = {"l1": float(loss.detach()), "depth": depth, "no_grad_iterations": no_grad_iterations}
        return loss, info

    # -------------------------------------------------------------------------------- inference
    @torch.no_grad()
    def run_head(
        self,
        encoded: EncodedObservation,
        settings: InferenceSettings | None = None,
        generator: torch.Generator | None = None,
        initial_state: torch.Tensor | None = None,
        previous_state: torch.Tensor | None = None,
        shift: int = 0,
    ) -> ChunkPrediction:
        """Run the recurrent head on already-encoded observations with the given halting settings.

        initial_state: the scratchpad S_0 (B, K, D) instead of one drawn from `generator`, e.g. one
        drawn on the host, so that runs on different devices start from the same S_0.
        previous_state (B, K, D) / shift: warm-start from a chunk planned `shift` rows earlier (see
        RecurrentDepthHead.iterate); None = the noise from `generator`."""
        settings = settings or self.config.inference
        start = time.perf_counter()
        lo, hi = settings.iteration_bounds
        name = settings.halting if settings.adaptive else "fixed"
        criterion = make_criterion(name, settings.threshold if settings.adaptive else None)
        if initial_state is not None:
            initial_state = initial_state.to(self.device, torch.float32)  # (B, K, D)
        out = self.head.iterate(
            encoded.features, encoded.proprio, criterion, min_iterations=lo, max_iterations=hi, generator=generator,
            initial_state=initial_state, cuda_graphs=settings.cuda_graphs, previous_state=previous_state, shift=shift,
        )  # fmt: skip
        actions = self.action_normalizer.unnormalize(out.actions)  # (B, K, A) raw units
        schedule = make_schedule(
            settings.horizon, chunk_length=self.config.head.chunk_length, **settings.horizon_params
        )
        horizon = torch.as_tensor(np.asarray(schedule(out.iterations.cpu().numpy())), dtype=torch.long)
        return ChunkPrediction(
            actions=actions,
            iterations=out.iterations,
            converged=out.converged,
            residual_trace=out.residual_trace,
            final_residual=out.final_residual,
            execution_horizon=horizon,
            settings=settings,
            backbone_latency_s=encoded.backbone_latency_s,
            head_latency_s=time.perf_counter() - start,
            state=out.state,
        )

    @torch.no_grad()
    def predict_action_chunk(
        self,
        obs: dict[str, Any],
        settings: InferenceSettings | None = None,
        generator: torch.Generator | None = None,
    ) -> ChunkPrediction:
        """Backbone once, then the adaptive head: the full chunk and its halting metadata."""
        return self.run_head(self.encode(obs), settings, generator)

    @torch.no_grad()
    def select_action(self, obs: dict[str, Any], settings: InferenceSettings | None = None) -> torch.Tensor:
        """One action per control step (B=1): re-plans when the executed horizon of the last chunk is used up."""
        if not self._queue:
            result = self.predict_action_chunk(obs, settings)
            h_exec = int(result.execution_horizon[0])
            self._queue.extend(result.actions[0, :h_exec])  # (A,) each
        return self._queue.popleft().unsqueeze(0)  # (1, A)

    def reset(self) -> None:
        """Forget queued actions (call at the start of an episode)."""
        self._queue.clear()
