"""Small head + random backbone features shared by the head tests."""

from __future__ import annotations

import torch

from rd_vla_ros.model.features import BackboneFeatures
from rd_vla_ros.model.head import RecurrentDepthHead
from rd_vla_ros.model.head_config import HeadConfig


def small_config(**overrides: object) -> HeadConfig:
    fields: dict[str, object] = {
        "d_model": 32, "backbone_width": 24, "num_heads": 4, "chunk_length": 8,
        "action_dim": 6, "proprio_dim": 5, "num_core_layers": 2,
    }  # fmt: skip
    fields.update(overrides)
    return HeadConfig(**fields)  # type: ignore[arg-type]


def features(batch: int = 3, n: int = 10, latents: int = 4, width: int = 24, seed: int = 0) -> BackboneFeatures:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(batch, n, dtype=torch.bool)
    mask[0, -3:] = False  # sample 0 has padded instruction tokens
    return BackboneFeatures(
        mid_task=torch.randn(batch, n, width, generator=g),
        mid_latent=torch.randn(batch, latents, width, generator=g),
        last_task=torch.randn(batch, n, width, generator=g),
        last_latent=torch.randn(batch, latents, width, generator=g),
        task_mask=mask,
        num_vision_tokens=6,
    )


def head(seed: int = 0, **overrides: object) -> RecurrentDepthHead:
    torch.manual_seed(seed)
    model = RecurrentDepthHead(small_config(**overrides))
    with torch.no_grad():  # open the vision gate so every path matters in the tests
        for layer in model.core.layers:
            layer.task_gate.fill_(0.5)
    return model.eval()


def proprio(batch: int = 3, dim: int = 5, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, dim, generator=torch.Generator().manual_seed(seed))


def contracting_head(seed: int = 0, state_gain: float = 0.1) -> RecurrentDepthHead:
    """A head whose core is a contraction (S_k depends weakly on S_{k-1}), so iterates converge.

    An untrained core is not contractive. Scaling the adapter's weights on S_{k-1} makes the
    fixed point attractive, at a rate that differs per sample (samples halt at different k).
    """
    model = head(seed)
    d = model.config.d_model
    with torch.no_grad():
        model.core.adapter.weight[:, :d] *= state_gain
    return model
