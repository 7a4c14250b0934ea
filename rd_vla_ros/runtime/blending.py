"""ChunkBlender: a new chunk blended with what earlier chunks planned for the same instants.

Applied to every chunk before the safety filter, in the node and in the simulation alike (one
implementation). A chunk stamped t has rows for the instants t + period .. t + K period; the
previous chunks still cover some of those instants when the policy re-plans before they end.

    none       the new chunk as it is (the paper's execution).
    ensemble   temporal ensembling (ACT, Zhao et al. 2023): each row becomes the weighted mean of every
               prediction for its instant, weight exp(-decay * i) with i = 0 for the oldest prediction
               (ACT's ordering: older predictions weigh more; decay 0.01 is nearly a plain mean).
    crossfade  over the instants the previous (blended) chunk still covers, the new chunk fades in
               linearly; after them it is used as it is.

Earlier chunks are read at the new rows' instants by linear interpolation, so chunks need not be
stamped on a common period grid (live sensors are not).
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

BLENDING_MODES = ("none", "ensemble", "crossfade")


class ChunkBlender:
    def __init__(self, mode: str = "none", decay: float = 0.01, history: int = 16) -> None:
        if mode not in BLENDING_MODES:
            raise ValueError(f"blending mode must be one of {list(BLENDING_MODES)}, got '{mode}'")
        if not (math.isfinite(decay) and decay >= 0):
            raise ValueError(f"blending decay must be finite and >= 0, got {decay}")
        self.mode = mode
        self.decay = decay
        self._chunks: deque[tuple[np.ndarray, np.ndarray]] = deque(maxlen=history)  # (times (K,), rows (K, J))

    def reset(self) -> None:
        """Forget earlier chunks (activation, a hold, a new episode): the next chunk is used as it is."""
        self._chunks.clear()

    def blend(self, stamp_ns: int, rows: np.ndarray, period_ns: int) -> np.ndarray:
        """rows (K, J) for the instants stamp + (i + 1) * period -> blended rows (K, J)."""
        rows = np.asarray(rows, dtype=np.float64)
        times = stamp_ns + (np.arange(rows.shape[0], dtype=np.int64) + 1) * period_ns  # (K,)
        while self._chunks and self._chunks[0][0][-1] < times[0]:  # ended before this chunk starts
            self._chunks.popleft()
        if self._chunks and self._chunks[-1][0][0] > times[0]:  # the clock went back: start afresh
            self._chunks.clear()
        if self.mode == "none" or not self._chunks:
            self._chunks.append((times, rows))
            return rows
        if self.mode == "crossfade":
            old, covered = _read(*self._chunks[-1], times)  # (K, J), (K,)
            n = int(covered.sum())
            alpha = np.where(covered, (np.cumsum(covered) / (n + 1)), 1.0)[:, None]  # (K, 1) new chunk's share
            out = alpha * rows + (1 - alpha) * np.where(covered[:, None], old, rows)
            self._chunks.append((times, out))
            return out
        total = np.zeros_like(rows)
        weight = np.zeros((rows.shape[0], 1))
        predictions = [_read(t, r, times) for t, r in self._chunks] + [(rows, np.ones(len(times), dtype=bool))]
        count = np.zeros(len(times), dtype=np.int64)  # per instant: predictions seen so far, oldest first
        for values, covered in predictions:
            w = np.where(covered, np.exp(-self.decay * count), 0.0)[:, None]  # (K, 1)
            total += w * np.where(covered[:, None], values, 0.0)
            weight += w
            count += covered
        self._chunks.append((times, rows))  # ACT averages raw predictions, not blended ones
        return total / weight


def _read(times: np.ndarray, rows: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An earlier chunk's rows at the instants `at` (linear interpolation) and where it covers them."""
    covered = (at >= times[0]) & (at <= times[-1])  # (K,)
    values = np.stack([np.interp(at, times, rows[:, j]) for j in range(rows.shape[1])], axis=1)  # (K, J)
    return values, covered
