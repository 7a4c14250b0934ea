"""What the backbone hands to the action head: hidden states of one observation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass
class BackboneFeatures:
    """Mid- and last-layer hidden states of the vision-language backbone, split by token kind.

    N = vision + task (instruction) tokens, L = learned latent tokens (64 in the paper), D = LLM width.

    Attributes:
        mid_task: (B, N, D) vision+task tokens at the middle layer (prelude keys).
        mid_latent: (B, L, D) latent tokens at the middle layer.
        last_task: (B, N, D) vision+task tokens at the last layer (core / coda keys).
        last_latent: (B, L, D) latent tokens at the last layer.
        task_mask: (B, N) bool, True where a vision/task token is real (False = padding), or None
            when every token is real.
        num_vision_tokens: how many of the N tokens are vision tokens (they come first); the core's
            tanh-gated cross-attention attends to these, the rest are instruction tokens.
    """

    mid_task: torch.Tensor
    mid_latent: torch.Tensor
    last_task: torch.Tensor
    last_latent: torch.Tensor
    task_mask: torch.Tensor | None
    num_vision_tokens: int

    @property
    def batch_size(self) -> int:
        return self.last_task.shape[0]

    @property
    def width(self) -> int:
        return self.last_task.shape[-1]

    def detach(self) -> BackboneFeatures:
        return self._map(torch.Tensor.detach, torch.Tensor.detach)

    def float(self) -> BackboneFeatures:
        """Hidden states as float32 (the head's dtype), whatever dtype the backbone ran in."""
        return self._map(torch.Tensor.float)

    def select(self, index: torch.Tensor | slice) -> BackboneFeatures:
        """Rows `index` of the batch (used to run one sample of a batch on its own)."""
        return self._map(lambda t: t[index], lambda m: m[index])

    def _map(
        self,
        states: Callable[[torch.Tensor], torch.Tensor],
        mask: Callable[[torch.Tensor], torch.Tensor] = lambda m: m,
    ) -> BackboneFeatures:
        """`states` applied to the four hidden states, `mask` to the task mask (when there is one)."""
        return BackboneFeatures(
            states(self.mid_task),
            states(self.mid_latent),
            states(self.last_task),
            states(self.last_latent),
            None if self.task_mask is None else mask(self.task_mask),
            self.num_vision_tokens,
        )
