"""Counters and rolling statistics the node reports on /diagnostics (no ROS types)."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass

import numpy as np

from rd_vla_ros.runtime.observation import Latest
from rd_vla_ros.runtime.scheduler import ReplanScheduler


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
        self.tracking_resets = 0  # chunks started from the measured position: the robot was far from the command
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


@dataclass
class DiagnosticGroup:
    """One /diagnostics status: a name suffix, whether it warns, a message and its key/value pairs."""

    name: str
    warn: bool
    message: str
    values: list[tuple[str, str]]


def diagnostic_groups(
    now_ns: int,
    stats: NodeStats,
    scheduler: ReplanScheduler,
    inputs: dict[str, Latest],
    rates: dict[str, RateMeter],
    halting: str,
    runtime: str,
    motion_enabled: bool,
) -> list[DiagnosticGroup]:
    """What the node reports on /diagnostics (inputs, inference, safety) as plain values; the node
    turns them into DiagnosticStatus messages."""
    s = stats
    inputs_kv: list[tuple[str, str]] = []
    for name, item in inputs.items():
        age = (now_ns - item.stamp_ns) / 1e9 if item.count else float("nan")
        rate = rates[name].rate(now_ns) if name in rates else 0.0
        inputs_kv += [(f"{name} rate hz", f"{rate:.1f}"), (f"{name} age s", f"{age:.3f}"),
                      (f"{name} dropped (newer arrived before use)", str(item.dropped))]  # fmt: skip
    inputs_kv += [(f"rejected {k}", str(n)) for k, n in sorted(s.rejected.items())]
    inputs_kv += [(f"blocked: {k}", str(n)) for k, n in sorted(s.blocked.items())]
    inference = [
        ("chunks", str(s.chunks)),
        ("latency p50 ms", f"{s.latency_ms(50):.2f}"),
        ("latency p99 ms", f"{s.latency_ms(99):.2f}"),
        ("input age at inference p50 ms", f"{s.input_age_ms(50):.2f}"),
        ("input age at inference p99 ms", f"{s.input_age_ms(99):.2f}"),
        ("re-plan lateness p50 ms", f"{scheduler.lateness_ms(50):.2f}"),
        ("re-plan lateness p99 ms", f"{scheduler.lateness_ms(99):.2f}"),
        ("late re-plans (> 1 period)", str(scheduler.late_replans)),
        ("overloaded (horizon < age + 2 x latency), chunks in a row", str(scheduler.overloaded_streak)),
        ("clock jumps back", str(scheduler.clock_jumps)),
        ("warm-up ms", ", ".join(f"{m:.1f}" for m in s.warmup_ms) or "none"),
        ("iterations histogram", s.iteration_histogram()),
        ("mean iterations", f"{s.mean_iterations():.2f}"),
        ("converged share", f"{s.converged_share():.3f}"),
        ("invalid outputs", str(s.invalid_outputs)),
        ("inference failures", str(s.inference_failures)),
        ("dropped chunks", str(s.dropped_chunks)),
        ("halting", halting),
        ("runtime", runtime),
    ]
    safety = [
        ("motion enabled", str(motion_enabled)),
        ("position clamps", str(s.position_clamps)),
        ("velocity clamps", str(s.velocity_clamps)),
        ("tracking resets", str(s.tracking_resets)),
        ("holds", str(s.holds)),
        ("late chunks (not commanded)", str(s.late_chunks)),
    ]
    blocked_now = any(s.blocked.values()) and s.chunks == 0
    return [
        DiagnosticGroup("inputs", blocked_now, "waiting for inputs" if blocked_now else "ok", inputs_kv),
        DiagnosticGroup("inference", s.invalid_outputs + s.inference_failures > 0, f"{s.chunks} chunks", inference),
        DiagnosticGroup("safety", False, "ok", safety),
    ]
