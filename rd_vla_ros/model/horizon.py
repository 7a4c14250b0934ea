"""Execution-horizon schedules: how many rows of a chunk to execute, given k* iterations.

The paper's text: more iterations = more uncertainty = re-plan sooner.
    binary   H = h_short if k* > tau else h_long                  (defaults tau=4, h_short=4, h_long=8)
    linear   H = max(h_min, h_max - max(0, k* - tau_base))        (defaults h_max=8, h_min=2, tau_base=4)
    fixed    H = h                                                  (default: the whole chunk)
Every result is clamped to [1, chunk_length]. The public code's reverse reading (more iterations ->
longer horizon) is obtained with binary h_short > h_long.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np


class HorizonSchedule:
    name: ClassVar[str]

    def __init__(self, chunk_length: int) -> None:
        if chunk_length < 1:
            raise ValueError(f"horizon: chunk_length must be >= 1, got {chunk_length}")
        self.chunk_length = chunk_length

    def _raw(self, k: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, iterations: int | np.ndarray) -> np.ndarray | int:
        """Horizon for k* (an int, or an int array of any shape)."""
        k = np.asarray(iterations, dtype=np.int64)
        h = np.clip(self._raw(k), 1, self.chunk_length).astype(np.int64)
        return int(h) if h.ndim == 0 else h

    @staticmethod
    def _positive(schedule: str, **values: float) -> None:
        for key, value in values.items():
            if value < 1 or int(value) != value:
                raise ValueError(f"horizon '{schedule}': {key} must be an integer >= 1, got {value}")


class BinaryHorizon(HorizonSchedule):
    name = "binary"

    def __init__(self, chunk_length: int, tau: int = 4, h_short: int = 4, h_long: int | None = None) -> None:
        super().__init__(chunk_length)
        h_long = chunk_length if h_long is None else h_long
        self._positive(self.name, tau=tau, h_short=h_short, h_long=h_long)
        self.tau, self.h_short, self.h_long = int(tau), int(h_short), int(h_long)

    def _raw(self, k: np.ndarray) -> np.ndarray:
        return np.where(k > self.tau, self.h_short, self.h_long)


class LinearHorizon(HorizonSchedule):
    name = "linear"

    def __init__(self, chunk_length: int, h_max: int | None = None, h_min: int = 2, tau_base: int = 4) -> None:
        super().__init__(chunk_length)
        h_max = chunk_length if h_max is None else h_max
        self._positive(self.name, h_max=h_max, h_min=h_min, tau_base=tau_base)
        if h_min > h_max:
            raise ValueError(f"horizon 'linear': h_min ({h_min}) must be <= h_max ({h_max})")
        self.h_max, self.h_min, self.tau_base = int(h_max), int(h_min), int(tau_base)

    def _raw(self, k: np.ndarray) -> np.ndarray:
        return np.maximum(self.h_min, self.h_max - np.maximum(0, k - self.tau_base))


class FixedHorizon(HorizonSchedule):
    name = "fixed"

    def __init__(self, chunk_length: int, h: int | None = None) -> None:
        super().__init__(chunk_length)
        h = chunk_length if h is None else h
        self._positive(self.name, h=h)
        self.h = int(h)

    def _raw(self, k: np.ndarray) -> np.ndarray:
        return np.full_like(k, self.h)


HORIZON_SCHEDULES: dict[str, type[HorizonSchedule]] = {s.name: s for s in (BinaryHorizon, LinearHorizon, FixedHorizon)}


def make_schedule(name: str, chunk_length: int, **params: float) -> HorizonSchedule:
    """The schedule registered as `name` with its parameters; ValueError names what is wrong."""
    cls = HORIZON_SCHEDULES.get(name)
    if cls is None:
        raise ValueError(f"unknown horizon schedule '{name}' (valid: {', '.join(HORIZON_SCHEDULES)})")
    try:
        return cls(chunk_length, **params)
    except TypeError as err:
        raise ValueError(f"horizon '{name}': {err}") from err


def parse_schedule(spec: str, chunk_length: int) -> tuple[str, dict[str, float]]:
    """'fixed:h=8', 'linear:h_min=4,h_max=8', 'binary' -> (name, params), checked by building the
    schedule; ValueError names a bad name, key or value."""
    name, _, rest = spec.partition(":")
    params: dict[str, float] = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"expected KEY=VALUE, got {item!r}")
        try:
            params[key.strip()] = int(value) if value.strip().lstrip("-").isdigit() else float(value)
        except ValueError:
            raise ValueError(f"{key}: not a number: {value!r}") from None
    make_schedule(name, chunk_length=chunk_length, **params)
    return name, params
