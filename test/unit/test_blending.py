"""ChunkBlender against naive per-instant references: temporal ensembling, cross-fade, no blending."""

from __future__ import annotations

import numpy as np
import pytest

from rd_vla_ros.runtime.blending import ChunkBlender

MS = 1_000_000
T = 20 * MS


def chunk(seed: int, k: int = 8, j: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(k, j))


def test_none_returns_the_chunk_unchanged() -> None:
    b = ChunkBlender("none")
    for i in range(3):
        rows = chunk(i)
        assert np.array_equal(b.blend(i * 4 * T, rows, T), rows)


@pytest.mark.parametrize("decay", [0.0, 0.01, 0.5])
def test_ensemble_is_the_weighted_mean_of_every_prediction_for_an_instant(decay: float) -> None:
    b = ChunkBlender("ensemble", decay=decay)
    stamps = [0, 3 * T, 6 * T, 9 * T]  # re-planning every 3 rows: up to 3 predictions per instant
    chunks = [chunk(i) for i in range(4)]
    outputs = [b.blend(s, c, T) for s, c in zip(stamps, chunks, strict=True)]
    for n, (s, out) in enumerate(zip(stamps, outputs, strict=True)):
        for i in range(8):
            t = s + (i + 1) * T
            preds = [c[(t - sp) // T - 1] for sp, c in zip(stamps[: n + 1], chunks[: n + 1], strict=True)
                     if sp + T <= t <= sp + 8 * T]  # fmt: skip  # oldest first
            w = np.exp(-decay * np.arange(len(preds)))
            expected = (w[:, None] * np.array(preds)).sum(0) / w.sum()
            np.testing.assert_allclose(out[i], expected, rtol=1e-12, atol=1e-12)


def test_crossfade_fades_the_new_chunk_in_over_the_overlap() -> None:
    b = ChunkBlender("crossfade")
    old, new = np.zeros((8, 2)), np.ones((8, 2))
    b.blend(0, old, T)
    out = b.blend(4 * T, new, T)  # the old chunk still covers 4 of the new rows
    np.testing.assert_allclose(out[:, 0], [0.2, 0.4, 0.6, 0.8, 1, 1, 1, 1])


def test_earlier_chunks_are_read_between_their_rows() -> None:
    b = ChunkBlender("ensemble", decay=0.0)
    ramp = np.arange(1, 9, dtype=float)[:, None]  # row i = i + 1 at instant (i + 1) T
    b.blend(0, ramp, T)
    out = b.blend(T // 2, np.zeros((8, 1)), T)  # half a period later: instants 1.5 T, 2.5 T, ...
    np.testing.assert_allclose(out[:7, 0], (np.arange(7) + 1.5) / 2)  # mean of 1.5, 2.5, ... and 0
    assert out[7, 0] == 0.0  # the old chunk ends at 8 T


def test_reset_and_a_clock_that_goes_back_forget_earlier_chunks() -> None:
    b = ChunkBlender("ensemble")
    b.blend(100 * T, chunk(0), T)
    rows = chunk(1)
    assert np.array_equal(b.blend(3 * T, rows, T), rows)  # the clock went back
    b.reset()
    assert np.array_equal(b.blend(4 * T, chunk(2), T), chunk(2))


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="one of"):
        ChunkBlender("average")
    with pytest.raises(ValueError, match="decay"):
        ChunkBlender("ensemble", decay=-1.0)
