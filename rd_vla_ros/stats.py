"""Counters and rolling statistics the node reports on /diagnostics (no ROS types)."""

from __future__ import annotations

from collections import Counter, deque

import numpy as np


class RateMeter:
    """Messages per second over a sliding window of arrival times (ns)."""

    def __init__(self, window_s: float = 2.0) -> None:
        self.window_ns = int(window_s * 1e9)
        self.times: deque[int] = deque()

    def tick(self, now_ns: int) -> None:
        self.times.append(now_ns)
        self._trim(now_ns)

    def rate(self, now_ns: int) -> float:
        self._trim(now_ns)
        if len(self.times) < 2:
            return 0.0
        span = (self.times[-1] - self.times[0]) / 1e9
        return (len(self.times) - 1) / span if span > 0 else 0.0

    def _trim(self, now_ns: int) -> None:
        while self.times and now_ns - self.times[0] > self.window_ns:
            self.times.popleft()


class NodeStats:
    """What happened since activation: chunks, latencies, iterations, rejections, safety events."""

    def __init__(self, history: int = 500) -> None:
        self.latency_s: deque[float] = deque(maxlen=history)
        self.input_age_s: deque[float] = deque(maxlen=history)  # newest input's age when inference started
        self.iterations: Counter[int] = Counter()
        self.chunks = 0
        self.converged = 0
        self.rejected: Counter[str] = Counter()  # input name -> bad messages
        self.blocked: Counter[str] = Counter()  # reason kind -> inference ticks blocked
        self.position_clamps = 0
        self.velocity_clamps = 0
        self.holds = 0
        self.invalid_outputs = 0
        self.inference_failures = 0  # the policy call raised (e.g. out of memory)
        self.dropped_chunks = 0  # computed but not commanded (motion disabled / deactivated meanwhile)
        self.late_chunks = 0  # not commanded: every executed row was already in the past
        self.warmup_ms: list[float] = []  # each warm-up inference at activation

    def record_chunk(self, latency_s: float, iterations: int, converged: bool, input_age_s: float = 0.0) -> None:
        self.chunks += 1
        self.latency_s.append(latency_s)
        self.input_age_s.append(input_age_s)
        self.iterations[iterations] += 1
        self.converged += int(converged)

    def latency_ms(self, q: float) -> float:
        return _percentile_ms(self.latency_s, q)

    def input_age_ms(self, q: float) -> float:
        return _percentile_ms(self.input_age_s, q)

    def iteration_histogram(self) -> str:
        return " ".join(f"{k}:{n}" for k, n in sorted(self.iterations.items()))

    def mean_iterations(self) -> float:
        total = sum(self.iterations.values())
        return sum(k * n for k, n in self.iterations.items()) / total if total else float("nan")

    def converged_share(self) -> float:
        return self.converged / self.chunks if self.chunks else float("nan")


def _percentile_ms(seconds: deque[float], q: float) -> float:
    return float(np.percentile(np.array(seconds), q) * 1e3) if seconds else float("nan")
