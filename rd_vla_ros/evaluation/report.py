"""The replay report: JSON for scripts and CI, a Markdown page, and PNG plots (matplotlib, Agg).

report.json     everything, machine-readable (settings, errors per joint, iterations, latency)
report.md       the Pareto table, the recommended threshold, per-joint errors of the deployed setting
pareto.png      full-chunk MAE vs mean iterations, one point per setting, the Pareto front drawn
iterations.png  the deployed setting's k* per tick drawn over the recorded joint commands
joints.png      predicted next target vs recorded command, per joint
"""

from __future__ import annotations

import json
import math
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rd_vla_ros.evaluation.metrics import pareto_front, percentile, recommend

if TYPE_CHECKING:
    from rd_vla_ros.ros.replay import ReplayResult


def machine() -> str:
    import os

    import torch

    return f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}, torch {torch.__version__}"


def summarize(result: ReplayResult, tolerance: float, context: dict[str, Any]) -> dict[str, Any]:
    settings = [s.summary() for s in result.settings]
    front = pareto_front([(s["iterations"]["mean"], s["full_chunk"]["mae"]) for s in settings])
    for s, on_front in zip(settings, front, strict=True):
        s["pareto"] = on_front
    return {
        **context,
        "bag": result.bag,
        "machine": machine(),
        "control_period_s": result.control_period_s,
        "stride": result.stride,
        "replan": result.replan,
        "joint_names": result.joint_names,
        "commanded_joints": result.commanded_joints,
        "ticks": {
            "total": result.ticks,
            "evaluated": result.evaluated,
            "repeated_observation": result.repeated,
            "blocked": dict(result.blocked),
        },
        "rejected_messages": dict(result.rejected),
        "invalid_outputs": dict(result.invalid_outputs),
        "skipped_topics": result.skipped_topics,
        "backbone_latency_ms": {"p50": percentile(result.backbone_latency_s, 50) * 1e3,
                                "p99": percentile(result.backbone_latency_s, 99) * 1e3},
        "preprocess_latency_ms": {"p50": percentile(result.preprocess_latency_s, 50) * 1e3},
        "settings": settings,
        "recorded_jerk": result.recorded_jerk or None,
        "recommendation": recommend(settings, tolerance),
        "live": result.live.summary(result.joint_names) if result.live else None,
    }  # fmt: skip


def _clean(value: Any) -> Any:
    """JSON has no NaN: write null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _fmt(x: float | None, digits: int = 4) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}g}"


def markdown(summary: dict[str, Any], plots: list[str]) -> str:
    lines = [
        "# Offline replay report",
        "",
        f"- bag: `{summary['bag']}`",
        f"- checkpoint: `{summary.get('checkpoint', '?')}`",
        f"- command: `{summary.get('command', '?')}`",
        f"- machine: {summary['machine']}",
        f"- ticks: {summary['ticks']['total']} every {summary['stride']} x {summary['control_period_s'] * 1e3:g} ms"
        + (", each setting re-planning when its executed rows run out" if summary.get("replan") == "horizon" else "")
        + f", {summary['ticks']['evaluated']} evaluated, {summary['ticks']['repeated_observation']} with no new data, "
        f"blocked: {summary['ticks']['blocked'] or 'none'}",
        f"- rejected messages: {summary['rejected_messages'] or 'none'}; skipped topics: "
        f"{summary['skipped_topics'] or 'none'}",
        f"- backbone latency p50 {_fmt(summary['backbone_latency_ms']['p50'], 3)} ms",
        "",
        "## Error vs compute",
        "",
        "MAE/RMSE in joint units (rad; grippers in their own units) against the recorded commands. "
        "*Executed* = the rows before re-planning (H_exec, which shrinks with k*); *full* = all rows "
        "(the same rows for every setting, used for the Pareto front). *clamps* = executed targets the node's "
        "safety layer would have changed (position limits, velocity limits from the measured joints). Rows are "
        "scored after the setting's chunk blending ([ensemble], [crossfade]; none without a suffix). *jerk* = "
        "mean |q[t+3] - 3 q[t+2] + 3 q[t+1] - q[t]| (mrad per control period cubed; arm joints) of the "
        "trajectory the executed rows form, each chunk replacing the rest of the previous one; the recorded "
        f"commands' own: {_fmt(1e3 * (summary.get('recorded_jerk') or {}).get('mean', math.nan), 3)}.",
        "",
        "| setting | mean k* | p90 k* | converged | mean H_exec | exec MAE | exec RMSE | full MAE | full RMSE "
        "| jerk | head p50 ms | total p50 ms | clamps | Pareto |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summary["settings"]:
        lines.append(
            f"| {s['name']} | {_fmt(s['iterations']['mean'], 3)} | {_fmt(s['iterations']['p90'], 3)} "
            f"| {_fmt(s['converged_share'], 3)} | {_fmt(s['mean_execution_horizon'], 3)} "
            f"| {_fmt(s['executed']['mae'])} | {_fmt(s['executed']['rmse'])} | {_fmt(s['full_chunk']['mae'])} "
            f"| {_fmt(s['full_chunk']['rmse'])} | {_fmt(1e3 * (s.get('jerk') or {}).get('mean', math.nan), 3)} "
            f"| {_fmt(s['head_latency_ms']['p50'], 3)} "
            f"| {_fmt(s['latency_ms']['p50'], 3)} | {s['safety_clamps']} | {'yes' if s['pareto'] else ''} |"
        )
    rec = summary["recommendation"]
    lines += ["", "## Recommendation", ""]
    if rec.get("setting"):
        lines.append(
            f"Deploy **{rec['halting']} threshold {_fmt(rec['threshold'])}** (`halting.strategy:={rec['halting']} "
            f"halting.threshold:={rec['threshold']}`): {rec['reason']}."
        )
    else:
        lines.append(f"No recommendation: {rec['reason']}.")
    deployed = summary["settings"][0]
    lines += ["", f"## Per-joint error of '{deployed['name']}'", "", "| joint | exec MAE | exec RMSE | full MAE |",
              "|---|---|---|---|"]  # fmt: skip
    for joint in summary["joint_names"]:
        lines.append(
            f"| {joint} | {_fmt(deployed['executed']['per_joint_mae'][joint])} "
            f"| {_fmt(deployed['executed']['per_joint_rmse'][joint])} "
            f"| {_fmt(deployed['full_chunk']['per_joint_mae'][joint])} |"
        )
    live = summary.get("live")
    if live:
        lines += [
            "",
            "## Live vs offline",
            "",
            f"{live['matched']} of {live['live_chunks']} chunks the live node published matched an offline "
            f"observation; max |live - offline| = {_fmt(live['max_abs_diff'])}, same k* in "
            f"{_fmt(live['same_iterations_share'], 3)} of them, live executed MAE "
            f"{_fmt((live['executed'] or {}).get('mae'))}.",
        ]
    lines += ["", *[f"![{Path(p).stem}]({Path(p).name})" for p in plots], ""]
    return "\n".join(lines)


def plots(result: ReplayResult, summary: dict[str, Any], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    settings = summary["settings"]
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for s in settings:
        x, y = s["iterations"]["mean"], s["full_chunk"]["mae"]
        if x is None or y is None or not (math.isfinite(x) and math.isfinite(y)):
            continue
        marker = "s" if s["fixed_depth"] else "o"
        ax.scatter([x], [y], marker=marker, color="C1" if s["pareto"] else "C0", zorder=3)
        ax.annotate(s["name"], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    front = sorted(
        (s["iterations"]["mean"], s["full_chunk"]["mae"]) for s in settings
        if s["pareto"] and s["full_chunk"]["mae"] is not None and math.isfinite(s["full_chunk"]["mae"])
    )  # fmt: skip
    if front:
        ax.plot(*zip(*front, strict=True), color="C1", lw=1, label="Pareto front")
        ax.legend(fontsize=8)
    ax.set_xlabel("mean recurrent iterations k* (compute)")
    ax.set_ylabel("full-chunk MAE vs recorded commands")
    ax.set_title("Error vs compute (circles: adaptive, squares: fixed depth)", fontsize=9)
    ax.grid(alpha=0.3)
    written.append(_save(fig, out / "pareto.png"))

    t0 = min(result.stamps_ns) if result.stamps_ns else 0
    ticks_s = (np.asarray(result.stamps_ns) - t0) / 1e9  # (N,)
    fig, ax = plt.subplots(figsize=(9, 4))
    if result.commands is not None and result.commands_t_ns is not None:
        ax.plot((result.commands_t_ns - t0) / 1e9, result.commands, lw=0.8, alpha=0.7)
    ax.set_xlabel("time since first observation (s)")
    ax.set_ylabel("recorded joint commands")
    twin = ax.twinx()
    deployed = result.settings[0]
    twin.step((np.asarray(deployed.stamps_ns) - t0) / 1e9, deployed.iterations, where="post", color="k", lw=1.2)
    twin.set_ylabel(f"k* ({result.settings[0].name})")
    ax.set_title("Recurrent iterations per observation over the recorded joint commands", fontsize=9)
    written.append(_save(fig, out / "iterations.png"))

    joints = result.joint_names
    cols = 4
    rows = math.ceil(len(joints) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.0 * rows), sharex=True, squeeze=False)
    predicted = np.asarray(result.predicted_next)  # (N, J)
    next_s = ticks_s + result.control_period_s
    for j, name in enumerate(joints):
        a = axes[j // cols][j % cols]
        if result.commands is not None and result.commands_t_ns is not None:
            a.plot((result.commands_t_ns - t0) / 1e9, result.commands[:, j], lw=1, label="recorded")
        if predicted.size:
            known = np.isfinite(predicted[:, j])  # ticks where the deployed setting did not re-plan: NaN
            a.plot(next_s[known], predicted[known, j], lw=0.8, ls="--", label="predicted")
        a.set_title(name, fontsize=8)
        a.tick_params(labelsize=7)
    for k in range(len(joints), rows * cols):
        axes[k // cols][k % cols].axis("off")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("Predicted next target vs recorded command", fontsize=9)
    written.append(_save(fig, out / "joints.png"))
    plt.close("all")
    return written


def _save(fig: Any, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return str(path)


def write_report(
    result: ReplayResult, out: Path, tolerance: float, context: dict[str, Any], with_plots: bool = True
) -> dict[str, Any]:
    """Write report.json, report.md and the plots into `out` (created; must not be the input bag)."""
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(result, tolerance, context)
    written = plots(result, summary, out) if with_plots else []
    (out / "report.json").write_text(json.dumps(_clean(summary), indent=2) + "\n", encoding="utf-8")
    (out / "report.md").write_text(markdown(summary, written), encoding="utf-8")
    return summary


def format_summary(summary: dict) -> str:
    """The Pareto table as plain text for the terminal."""

    def f(x: float | None, d: int = 4) -> str:
        return "n/a" if x is None or x != x else f"{x:.{d}g}"

    t = summary["ticks"]
    lines = [
        f"{summary['bag']}: {t['evaluated']} observations evaluated of {t['total']} ticks "
        f"(blocked {t['blocked'] or 'never'}); backbone p50 {f(summary['backbone_latency_ms']['p50'], 3)} ms",
        f"{'setting':<22}{'mean k*':>9}{'conv':>7}{'H_exec':>8}{'exec MAE':>11}{'full MAE':>11}{'jerk':>9}"
        f"{'head ms':>9}  pareto",
    ]
    for s in summary["settings"]:
        jerk = 1e3 * (s.get("jerk") or {}).get("mean", float("nan"))  # mrad per period^3, arm joints
        lines.append(
            f"{s['name']:<22}{f(s['iterations']['mean'], 3):>9}{f(s['converged_share'], 2):>7}"
            f"{f(s['mean_execution_horizon'], 3):>8}{f(s['executed']['mae']):>11}{f(s['full_chunk']['mae']):>11}"
            f"{f(jerk, 3):>9}{f(s['head_latency_ms']['p50'], 3):>9}  {'*' if s['pareto'] else ''}"
        )
    rec = summary["recommendation"]
    lines.append(
        f"recommended: {rec['halting']} threshold {rec['threshold']:g} ({rec['reason']})"
        if rec.get("setting") else f"no recommendation: {rec['reason']}"
    )  # fmt: skip
    live = summary.get("live")
    if live:
        lines.append(
            f"live vs offline: {live['matched']}/{live['live_chunks']} chunks matched, max |diff| "
            f"{f(live['max_abs_diff'])}, same k* share {f(live['same_iterations_share'], 3)}"
        )
    return "\n".join(lines)
