"""Samples for training from decoded episodes (no ROS types): observation t -> the next H commands.

Batches are drawn by index from a generator seeded with (seed, step, rank): a resumed run draws the
batches the uninterrupted run would have drawn, and data-parallel ranks draw different ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rd_vla_ros.train.episode import Episode


class EpisodeDataset:
    """All observations of a set of episodes, concatenated.

    Args:
        episodes: decoded recordings (images (N, C, S, S, 3) uint8 etc.).
        shift: random-shift augmentation in pixels (pad by `shift`, random crop back), 0 = off.
        proprio_noise: std of Gaussian noise added to the joint positions the policy sees (raw units:
            rad, grippers normalised); the targets stay clean. On demonstrations the joint positions
            alone give the trajectory away, so a policy learns to follow them and to ignore the
            cameras; blurred joints leave the phase of the motion but make the cameras tell where
            the objects are. 0 = off.
    """

    def __init__(self, episodes: list[Episode], shift: int = 4, proprio_noise: float = 0.0) -> None:
        if not episodes:
            raise ValueError("no episodes to train on")
        self.episodes = episodes
        self.shift = shift
        self.proprio_noise = proprio_noise
        self.images = np.concatenate([e.images for e in episodes])  # (N, C, S, S, 3) uint8
        self.proprio = np.concatenate([e.proprio for e in episodes])  # (N, J)
        self.actions = np.concatenate([e.actions for e in episodes])  # (N, H, J)
        self.action_is_pad = np.concatenate([e.action_is_pad for e in episodes])  # (N, H)
        self.instructions = [e.instruction for e in episodes for _ in range(len(e))]
        usable = ~self.action_is_pad[:, 0]  # at least the first row has a recorded command
        self.indices = np.flatnonzero(usable)
        if self.indices.size == 0:
            raise ValueError("no observation has a recorded command to learn from")

    def __len__(self) -> int:
        return int(self.indices.size)

    @property
    def tasks(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for e in self.episodes:
            counts[e.instruction] = counts.get(e.instruction, 0) + 1
        return counts

    def valid_actions(self) -> np.ndarray:
        """(M, J) every recorded target row (for the action normaliser)."""
        return self.actions[~self.action_is_pad]

    def batch(
        self, batch_size: int, seed: int, step: int, rank: int = 0, proprio_dropout: float = 0.0
    ) -> dict[str, Any]:
        """A training batch drawn from (seed, step, rank). With proprio_dropout > 0, that share of the
        samples gets `proprio_keep` False: the policy then sees no joint positions for them."""
        rng = np.random.default_rng([seed, step, rank])
        idx = self.indices[rng.integers(0, self.indices.size, size=batch_size)]  # (B,)
        images = torch.from_numpy(self.images[idx]).permute(0, 1, 4, 2, 3).float().div_(255.0)  # (B, C, 3, S, S)
        if self.shift > 0:
            images = random_shift(images, self.shift, rng)
        proprio = torch.from_numpy(self.proprio[idx])  # (B, J)
        if self.proprio_noise > 0:
            proprio = proprio + torch.from_numpy(rng.normal(0.0, self.proprio_noise, proprio.shape).astype(np.float32))
        extra = {}
        if proprio_dropout > 0:
            extra["proprio_keep"] = torch.from_numpy(rng.random(batch_size) >= proprio_dropout)  # (B,)
        return {
            **extra,
            "images": images,
            "proprio": proprio,
            "actions": torch.from_numpy(self.actions[idx]),
            "action_is_pad": torch.from_numpy(self.action_is_pad[idx]),
            "instruction": [self.instructions[i] for i in idx],
            "index": torch.from_numpy(idx),
        }


def random_shift(images: torch.Tensor, pad: int, rng: np.random.Generator) -> torch.Tensor:
    """DrQ-style augmentation: replicate-pad by `pad` px and crop back at a random offset per sample.

    images: (B, C, 3, S, S) -> same shape; every camera of a sample moves by its own offset."""
    b, c, ch, h, w = images.shape
    if c == 0:  # a state-only policy: nothing to shift
        return images
    flat = images.reshape(b * c, ch, h, w)
    padded = torch.nn.functional.pad(flat, (pad, pad, pad, pad), mode="replicate")  # (B*C, 3, S+2p, S+2p)
    dx = rng.integers(0, 2 * pad + 1, size=b * c)
    dy = rng.integers(0, 2 * pad + 1, size=b * c)
    out = torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(b * c)])
    return out.reshape(b, c, ch, h, w)
