"""One recorded episode as plain arrays: what training reads (no ROS types; bags are decoded in ros/episodes)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Episode:
    """One recording as arrays (N observations).

    images: (N, C, S, S, 3) uint8; proprio: (N, J) float32; actions: (N, H, J) float32 targets;
    action_is_pad: (N, H) bool (no recorded command); stamps_ns: (N,) int64; instruction: str.
    """

    images: np.ndarray
    proprio: np.ndarray
    actions: np.ndarray
    action_is_pad: np.ndarray
    stamps_ns: np.ndarray
    instruction: str
    source: str

    def __len__(self) -> int:
        return int(self.proprio.shape[0])
