"""Error and compute statistics of predicted chunks, the error-vs-compute Pareto front, and the
halting threshold it recommends (no ROS types)."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rd_vla_ros.evaluation.commands import CommandTimeline
from rd_vla_ros.model.config import InferenceSettings


class ErrorAccumulator:
    """Streaming per-joint MAE / RMSE over the leading rows of every chunk (and MAE per chunk row)."""

    def __init__(self, num_joints: int, chunk_length: int) -> None:
        self.abs_sum = np.zeros(num_joints)  # (J,)
        self.sq_sum = np.zeros(num_joints)  # (J,)
        self.count = np.zeros(num_joints, dtype=np.int64)  # (J,)
        self.row_abs_sum = np.zeros(chunk_length)  # (H,)
        self.row_count = np.zeros(chunk_length, dtype=np.int64)  # (H,)

    def add(self, errors: np.ndarray, valid: np.ndarray, rows: int) -> None:
        """errors, valid: (H, J) prediction - ground truth and where the ground truth exists; the
        first `rows` rows count."""
        e = np.where(valid, errors, 0.0)[:rows]  # (rows, J)
        v = valid[:rows]
        self.abs_sum += np.abs(e).sum(0)
        self.sq_sum += (e**2).sum(0)
        self.count += v.sum(0)
        self.row_abs_sum[:rows] += np.abs(e).sum(1)
        self.row_count[:rows] += v.sum(1)

    def summary(self, joint_names: list[str]) -> dict[str, Any]:
        with np.errstate(invalid="ignore", divide="ignore"):
            mae = self.abs_sum / self.count  # (J,) NaN where never scored
            rmse = np.sqrt(self.sq_sum / self.count)
            by_row = self.row_abs_sum / self.row_count
        total = int(self.count.sum())
        return {
            "mae": float(self.abs_sum.sum() / total) if total else math.nan,
            "rmse": float(math.sqrt(self.sq_sum.sum() / total)) if total else math.nan,
            "samples": total,
            "per_joint_mae": dict(zip(joint_names, map(float, mae), strict=True)),
            "per_joint_rmse": dict(zip(joint_names, map(float, rmse), strict=True)),
            "mae_by_row": [float(x) for x in by_row],
        }


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else math.nan


def jerk(positions: np.ndarray, joint_names: list[str], arm_mask: list[bool] | None = None) -> dict[str, Any]:
    """Jerk of a commanded trajectory sampled once per control period.

    positions (T, J), NaN where unknown. The jerk of a sample is the third difference
    q[t+3] - 3 q[t+2] + 3 q[t+1] - q[t] (joint units per control period cubed: divide by period^3 for
    units/s^3), counted over every window of four known samples. Returns its mean absolute value over
    the joints in `arm_mask` ("mean"; every joint when None: grippers are in their own units), per
    joint, and the number of windows."""
    d3 = np.diff(np.asarray(positions, dtype=np.float64), n=3, axis=0)  # (T-3, J), NaN if any sample unknown
    valid = np.isfinite(d3)
    a = np.where(valid, np.abs(d3), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_joint = a.sum(0) / valid.sum(0)  # (J,)
    mask = np.ones(len(joint_names), dtype=bool) if arm_mask is None else np.asarray(arm_mask, dtype=bool)
    count = int(valid[:, mask].sum())
    return {
        "mean": float(a[:, mask].sum() / count) if count else math.nan,
        "per_joint": dict(zip(joint_names, map(float, per_joint), strict=True)),
        "windows": int(valid.all(1).sum()),
    }


def sampled(timeline: CommandTimeline, period_ns: int) -> np.ndarray:
    """The timeline on a grid of one sample per control period over its span: (T, J), NaN where unknown."""
    span = timeline.span_ns()
    if span is None:
        return np.empty((0, len(timeline.joint_names)))
    return timeline.targets(np.arange(span[0], span[1] + 1, period_ns, dtype=np.int64))[0]


@dataclass
class SettingStats:
    """Everything recorded for one inference setting over a replay."""

    name: str
    settings: InferenceSettings
    joint_names: list[str]
    chunk_length: int
    iterations: list[int] = field(default_factory=list)
    converged: list[bool] = field(default_factory=list)
    execution_horizon: list[int] = field(default_factory=list)
    head_latency_s: list[float] = field(default_factory=list)
    total_latency_s: list[float] = field(default_factory=list)
    safety_clamps: int = 0
    blending: str = "none"  # the ChunkBlender mode its chunks go through before they are scored
    stamps_ns: list[int] = field(default_factory=list)  # observation stamp of every chunk
    jerk: dict[str, Any] = field(default_factory=dict)  # of `commanded`, set when the replay ends

    def __post_init__(self) -> None:
        self.executed = ErrorAccumulator(len(self.joint_names), self.chunk_length)
        self.full = ErrorAccumulator(len(self.joint_names), self.chunk_length)
        self.commanded = CommandTimeline(self.joint_names)  # the executed rows, as the arms would receive them

    def record(self, iterations: int, converged: bool, horizon: int, head_s: float, total_s: float) -> None:
        self.iterations.append(iterations)
        self.converged.append(converged)
        self.execution_horizon.append(horizon)
        self.head_latency_s.append(head_s)
        self.total_latency_s.append(total_s)

    def score(self, errors: np.ndarray, valid: np.ndarray, horizon: int) -> None:
        """errors, valid (H, J): one chunk against the recorded commands."""
        self.executed.add(errors, valid, horizon)
        self.full.add(errors, valid, self.chunk_length)

    def summary(self) -> dict[str, Any]:
        s = self.settings
        its = self.iterations
        return {
            "name": self.name,
            "halting": s.halting if s.adaptive else "fixed",
            "threshold": s.effective_threshold,
            "fixed_depth": s.fixed_depth,
            "min_iterations": s.iteration_bounds[0],
            "max_iterations": s.iteration_bounds[1],
            "horizon": s.horizon,
            "warm_start": s.warm_start,
            "warm_start_shift": s.warm_start_shift,
            "blending": self.blending,
            "chunks": len(its),
            "iterations": {
                "mean": float(np.mean(its)) if its else math.nan,
                "p50": percentile(its, 50),
                "p90": percentile(its, 90),
                "max": int(max(its)) if its else 0,
                "histogram": {str(k): n for k, n in sorted(Counter(its).items())},
            },
            "converged_share": float(np.mean(self.converged)) if its else math.nan,
            "mean_execution_horizon": float(np.mean(self.execution_horizon)) if its else math.nan,
            "head_latency_ms": {"p50": percentile(self.head_latency_s, 50) * 1e3,
                                "p99": percentile(self.head_latency_s, 99) * 1e3},
            "latency_ms": {"p50": percentile(self.total_latency_s, 50) * 1e3,
                           "p99": percentile(self.total_latency_s, 99) * 1e3},
            "safety_clamps": self.safety_clamps,
            "executed": self.executed.summary(self.joint_names),
            "full_chunk": self.full.summary(self.joint_names),
            "jerk": self.jerk or None,
        }  # fmt: skip


def pareto_front(points: list[tuple[float, float]]) -> list[bool]:
    """points: (compute, error), lower is better for both; True for points no other point dominates."""
    front = []
    for i, (c, e) in enumerate(points):
        dominated = any(
            (c2 <= c and e2 <= e) and (c2 < c or e2 < e) for j, (c2, e2) in enumerate(points) if j != i
        ) or not (math.isfinite(c) and math.isfinite(e))
        front.append(not dominated)
    return front


def recommend(summaries: list[dict[str, Any]], tolerance: float) -> dict[str, Any]:
    """The cheapest adaptive setting whose full-chunk MAE is within `tolerance` (relative) of the best
    MAE of any setting. Full-chunk error compares every setting on the same rows (the executed
    horizon shrinks with k*, so executed-horizon errors are over different rows)."""
    errors = [s["full_chunk"]["mae"] for s in summaries]
    finite = [e for e in errors if math.isfinite(e)]
    if not finite:
        return {"setting": None, "reason": "no chunk could be scored against recorded commands"}
    best = min(finite)
    budget = best * (1.0 + tolerance)
    candidates = [
        s for s in summaries
        if s["fixed_depth"] == 0 and math.isfinite(s["full_chunk"]["mae"]) and s["full_chunk"]["mae"] <= budget
    ]  # fmt: skip
    if not candidates:
        reason = f"no adaptive setting is within {tolerance:.0%} of the best full-chunk MAE {best:.4g}"
        return {"setting": None, "best_mae": best, "reason": reason}
    pick = min(candidates, key=lambda s: (s["iterations"]["mean"], s["full_chunk"]["mae"]))
    # the most compute spent, preferring a fixed depth (the "always think hard" baseline) on ties
    reference = max(summaries, key=lambda s: (s["iterations"]["mean"], s["fixed_depth"] > 0))
    saving = 1.0 - pick["iterations"]["mean"] / reference["iterations"]["mean"]
    return {
        "setting": pick["name"],
        "halting": pick["halting"],
        "threshold": pick["threshold"],
        "mean_iterations": pick["iterations"]["mean"],
        "full_chunk_mae": pick["full_chunk"]["mae"],
        "best_mae": best,
        "tolerance": tolerance,
        "compute_saving_vs_most_iterations": saving,
        "reason": f"cheapest adaptive setting within {tolerance:.0%} of the best full-chunk MAE ({best:.4g}); "
        f"{saving:.0%} fewer iterations than '{reference['name']}'",
    }
