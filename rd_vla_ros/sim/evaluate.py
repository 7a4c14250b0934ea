"""`rd-vla sim-eval`: closed-loop success in the ALOHA simulation against recurrent depth.

Each episode runs in-process through the deployed code path minus the transport: the observation
(rendered cameras, joint positions, the task's instruction) goes through the node's PolicyRunner
with the setting under test; the safety layer clamps the executed rows exactly as the node does;
the sim executes them one per control period (row i reaches its target one period after the
previous one) and the policy re-plans when the execution horizon runs out (inference is instant in
sim time here; the ROS bridge path in rd_vla_ros.sim.bridge adds the real transport and timing).

Success is counted both ways the reference describes for TransferCube: the reward reached 4 at some
step ("reached"), and reward 4 at the last step ("final"). Confidence intervals are Wilson 95%.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from rd_vla_ros.evaluation.options import SimEvalOptions
from rd_vla_ros.model.config import InferenceSettings
from rd_vla_ros.robot import RobotDescription
from rd_vla_ros.runtime.blending import ChunkBlender
from rd_vla_ros.runtime.observation import Observation
from rd_vla_ros.runtime.runner import PolicyRunner
from rd_vla_ros.runtime.safety import SafetyFilter

if TYPE_CHECKING:
    from rd_vla_ros.sim.aloha import AlohaSim


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion."""
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass
class EpisodeResult:
    task: str
    seed: int
    reached: bool
    final: bool
    max_reward: int
    iterations: list[int] = field(default_factory=list)
    horizons: list[int] = field(default_factory=list)
    latency_s: list[float] = field(default_factory=list)
    clamps: int = 0


def run_episode(
    runner: PolicyRunner,
    robot: RobotDescription,
    task: str,
    seed: int,
    settings: InferenceSettings,
    sim: AlohaSim | None = None,
    velocity_scale: float = 1.0,
    blending: str = "none",
) -> EpisodeResult:
    """One closed-loop episode of EPISODE_STEPS control steps; chunks blended (`blending`) as the node does.
    The runner is reset first: a warm start (settings.warm_start) never carries over from another episode."""
    from rd_vla_ros.sim.aloha import CONTROL_PERIOD_S, EPISODE_STEPS, AlohaSim, task_spec

    blender = ChunkBlender(blending)
    runner.reset()
    period_ns = round(CONTROL_PERIOD_S * 1e9)
    sim = sim or AlohaSim(task, runner.camera_names)
    sim.reset(seed)
    instruction = task_spec(task).instruction
    result = EpisodeResult(task, seed, False, False, 0)
    step = 0
    safety = SafetyFilter.for_robot(robot, velocity_scale=velocity_scale)  # the node's filter and defaults
    while step < EPISODE_STEPS:
        qpos = sim.qpos()
        stamp = round(sim.time_s * 1e9)
        obs = Observation(images=sim.images(), joint_positions=qpos, instruction=instruction, stamp_ns=stamp)
        chunk, timing = runner.run(obs, step, settings)
        blended = blender.blend(stamp, chunk.positions, period_ns)[: chunk.execution_horizon]  # (H, J)
        rows, report = safety.command(blended, stamp, CONTROL_PERIOD_S, qpos)
        result.iterations.append(chunk.iterations)
        result.horizons.append(chunk.execution_horizon)
        result.latency_s.append(timing.total_s)
        result.clamps += report.total
        for row in rows:
            if step >= EPISODE_STEPS:
                break
            sim.step(row)
            step += 1
    outcome = sim.success()
    result.reached, result.final = outcome["reached"], outcome["final"]
    result.max_reward = max(sim.rewards) if sim.rewards else 0
    return result


def summarize(episodes: list[EpisodeResult]) -> dict[str, Any]:
    n = len(episodes)
    reached = sum(e.reached for e in episodes)
    final = sum(e.final for e in episodes)
    its = [k for e in episodes for k in e.iterations]
    latencies = [x for e in episodes for x in e.latency_s]
    hist: dict[str, int] = {}
    for k in its:
        hist[str(k)] = hist.get(str(k), 0) + 1
    return {
        "episodes": n,
        "success_reached": reached / n if n else math.nan,
        "success_reached_ci95": wilson(reached, n),
        "success_final": final / n if n else math.nan,
        "success_final_ci95": wilson(final, n),
        "mean_iterations": float(np.mean(its)) if its else math.nan,
        "iterations_histogram": dict(sorted(hist.items(), key=lambda kv: int(kv[0]))),
        "mean_execution_horizon": float(np.mean([h for e in episodes for h in e.horizons])) if its else math.nan,
        "chunks": len(its),
        "latency_ms_p50": float(np.percentile(latencies, 50) * 1e3) if latencies else math.nan,
        "max_reward_histogram": {str(r): sum(e.max_reward == r for e in episodes) for r in range(5)},
        "seeds": [e.seed for e in episodes],
    }


def evaluate(
    runner: PolicyRunner,
    robot: RobotDescription,
    tasks: list[str],
    seeds: list[int],
    sweep: list[tuple[str, InferenceSettings]],
    progress: Any = None,
    blending: str = "none",
) -> dict[str, Any]:
    """Every (task, setting) on the same seeds. Returns {task: {setting name: summary}}."""
    from rd_vla_ros.sim.aloha import AlohaSim

    results: dict[str, Any] = {}
    with torch.no_grad():
        for task in tasks:
            sim = AlohaSim(task, runner.camera_names)
            results[task] = {}
            for name, settings in sweep:
                start = time.perf_counter()
                episodes = [run_episode(runner, robot, task, seed, settings, sim, blending=blending) for seed in seeds]
                results[task][name] = {**summarize(episodes), "wall_s": time.perf_counter() - start,
                                       "fixed_depth": settings.fixed_depth,
                                       "threshold": settings.effective_threshold}  # fmt: skip
                if progress is not None:
                    progress(task, name, results[task][name])
            sim.close()
    return results


def sweep_for(
    base: InferenceSettings, depths: list[int], thresholds: list[float], suffix: str = ""
) -> list[tuple[str, InferenceSettings]]:
    """Fixed depths first, then adaptive halting (the base strategy) at each threshold; `suffix` is
    appended to every setting's name (e.g. the horizon schedule, so runs can be merged)."""
    from dataclasses import replace

    out = [(f"fixed {d}{suffix}", replace(base, fixed_depth=d)) for d in depths]
    out += [(f"{base.halting} {t:g}{suffix}", replace(base, fixed_depth=0, threshold=t)) for t in thresholds]
    return out


def plot_results(results: dict[str, Any], out_dir: Any) -> list[str]:
    """success_vs_depth.png and success_vs_iterations.png (adaptive thresholds against fixed depths)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for i, (task, settings) in enumerate(results.items()):
        groups: dict[str, list[tuple[int, dict]]] = {}  # one line per horizon (the name's "[...]" suffix)
        for name, s in settings.items():
            if s["fixed_depth"]:
                groups.setdefault(name.partition(" [")[2].rstrip("]"), []).append((s["fixed_depth"], s))
        for j, (suffix, fixed) in enumerate(sorted(groups.items())):
            fixed.sort(key=lambda item: item[0])
            x = [d for d, _ in fixed]
            for key, style in (("success_reached", "-" + "o^v"[j % 3]), ("success_final", "--s")):
                y = [s[key] for _, s in fixed]
                lo = [s[key] - s[key + "_ci95"][0] for _, s in fixed]
                hi = [s[key + "_ci95"][1] - s[key] for _, s in fixed]
                ax.errorbar(x, y, yerr=[lo, hi], fmt=style, color=f"C{2 * i + j}", capsize=3, ms=4,
                            label=f"{task}{f' [{suffix}]' if suffix else ''} ({key.split('_')[1]})")  # fmt: skip
    written.append(_finish(fig, ax, "recurrent iterations (fixed depth)", "success rate (95% CI)",
                           "Closed-loop success vs recurrent depth", f"{out_dir}/success_vs_depth.png"))  # fmt: skip

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for i, (task, settings) in enumerate(results.items()):
        for name, s in settings.items():
            adaptive = s["fixed_depth"] == 0
            ax.scatter([s["mean_iterations"]], [s["success_reached"]], marker="o" if adaptive else "s",
                       color=f"C{i}", alpha=0.9 if adaptive else 0.4)  # fmt: skip
            if adaptive:
                label = f"{s['threshold']:g}" if s.get("threshold") is not None else name.split()[0]
                label += f" [{name.split('[', 1)[1]}" if "[" in name else ""  # the horizon, when not deployed
                ax.annotate(label, (s["mean_iterations"], s["success_reached"]), fontsize=6,
                            textcoords="offset points", xytext=(3, 3))  # fmt: skip
        ax.scatter([], [], color=f"C{i}", label=task)
    written.append(_finish(fig, ax, "mean recurrent iterations per chunk", "success rate (reached)",
                           "Adaptive halting (circles, threshold labelled) vs fixed depth (squares)",
                           f"{out_dir}/success_vs_iterations.png"))  # fmt: skip
    plt.close("all")
    return written


def _finish(fig: Any, ax: Any, xlabel: str, ylabel: str, title: str, path: str) -> str:
    ax.set_xscale("log", base=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def markdown_table(results: dict[str, Any]) -> str:
    """One row per (task, setting): success both ways with 95% CIs, iterations, horizon."""

    def pct(s: dict, key: str) -> str:
        lo, hi = s[key + "_ci95"]
        return f"{100 * s[key]:.0f}% [{100 * lo:.0f}, {100 * hi:.0f}]"

    def seeds(s: dict) -> str:
        seen = sorted(s.get("seeds") or [])
        if not seen:
            return ""
        if len(seen) > 2 and seen == list(range(seen[0], seen[-1] + 1)):
            return f"{seen[0]}-{seen[-1]}"
        return ",".join(map(str, seen))

    header = (
        "| task | setting | seeds | episodes | success (reached 4) | success (4 at the end) | mean k* | mean H_exec |"
    )
    lines = [header, "|---|---|---|---|---|---|---|---|"]
    for task, settings in results.items():
        for name, s in settings.items():
            horizon = s.get("mean_execution_horizon")
            lines.append(
                f"| {task} | {name} | {seeds(s)} | {s['episodes']} | {pct(s, 'success_reached')} "
                f"| {pct(s, 'success_final')} "
                f"| {s['mean_iterations']:.2f} | {'' if horizon is None or horizon != horizon else f'{horizon:.2f}'} |"
            )
    return "\n".join(lines)


def run_sim_eval(options: SimEvalOptions, progress: Any = None) -> dict[str, Any]:
    """The results payload of one sim-eval run (without its command line); ValueError (one line) for
    a checkpoint that cannot be evaluated here or a bad option."""
    from dataclasses import replace

    from rd_vla_ros.evaluation.report import machine
    from rd_vla_ros.model.checkpoint import CheckpointError, check_fit, load_policy, read_config
    from rd_vla_ros.model.horizon import parse_schedule
    from rd_vla_ros.paths import config_path, resolve_checkpoint

    if options.ros and (options.horizon or options.warm_start is not None or options.warm_start_shift is not None):
        raise ValueError("--ros runs the node's deployed settings; --horizon and --warm-start are in-process only")
    checkpoint = resolve_checkpoint(options.checkpoint)
    config, _ = read_config(checkpoint)  # a checkpoint that does not fit is refused before the model and MuJoCo load
    robot = RobotDescription.from_yaml(config_path("aloha_bimanual.yaml"))
    check_fit(config, robot.joint_names, robot=f"the simulated robot '{robot.name}'")
    if not config.camera_names:
        raise CheckpointError("the ALOHA simulation evaluates camera policies; this checkpoint is state-only")
    from rd_vla_ros.sim.aloha import EPISODE_STEPS

    torch.set_num_threads(options.threads)
    policy = load_policy(checkpoint)
    runner = PolicyRunner(policy, robot.joint_names, list(policy.config.camera_names))
    base = runner.settings
    if options.horizon:
        try:
            name, params = parse_schedule(options.horizon, policy.config.head.chunk_length)
        except ValueError as err:
            raise ValueError(f"--horizon: {err}") from None
        base = replace(base, horizon=name, horizon_params=params)
    if options.warm_start is not None:
        base = replace(base, warm_start=options.warm_start)
    if options.warm_start_shift is not None:
        base = replace(base, warm_start_shift=options.warm_start_shift)
    warm = ("warm shifted" if base.warm_start_shift else "warm") if base.warm_start else None
    blending = None if options.blending == "none" else options.blending
    suffix = "".join(f" [{x}]" for x in (options.horizon, blending, warm) if x)
    sweep = sweep_for(base, options.depths, options.thresholds, suffix)
    seeds = options.seeds
    if options.ros:
        results = ros_evaluate(str(checkpoint), options.tasks, seeds, options.real_time_factor, progress)
    else:
        results = evaluate(runner, robot, options.tasks, seeds, sweep, progress, options.blending)
    return {"checkpoint": str(checkpoint), "machine": machine(),
            "horizon": {"schedule": base.horizon, **base.horizon_params}, "seeds": seeds,
            "blending": options.blending, "warm_start": base.warm_start, "warm_start_shift": base.warm_start_shift,
            "episodes_per_setting": len(seeds), "episode_steps": EPISODE_STEPS, "results": results}  # fmt: skip


def ros_evaluate(checkpoint: str, tasks: list[str], seeds: list[int], rtf: float, progress: Any = None) -> dict:
    """The deployed setting (config/rd_vla_node.yaml) through the node and the sim bridge over DDS."""
    import tempfile
    from collections import Counter
    from pathlib import Path

    from rd_vla_ros.demos.closed_loop import run as run_closed_loop

    results: dict = {}
    for task in tasks:
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            rc, episodes = run_closed_loop(checkpoint, [(task, s) for s in seeds], Path(tmp), rtf, frame_every=0)
        if rc != 0:
            raise RuntimeError(f"the ROS closed loop failed for {task}")
        n = len(episodes)
        reached, final = sum(e["reached"] for e in episodes), sum(e["final"] for e in episodes)
        its = [e["mean_iterations"] for e in episodes]
        horizons: Counter = Counter()
        for e in episodes:
            horizons.update({int(h): count for h, count in e["horizons"].items()})  # H_exec -> chunks
        mean_horizon = sum(h * count for h, count in horizons.items()) / max(1, sum(horizons.values()))
        results[task] = {"deployed (ROS node + bridge)": {
            "episodes": n, "success_reached": reached / n, "success_reached_ci95": wilson(reached, n),
            "success_final": final / n, "success_final_ci95": wilson(final, n),
            "mean_iterations": float(np.mean(its)), "mean_execution_horizon": mean_horizon, "fixed_depth": 0,
            "seeds": seeds, "wall_s": time.perf_counter() - start, "per_episode": episodes,
        }}  # fmt: skip
        if progress is not None:
            progress(task, "deployed (ROS)", results[task]["deployed (ROS node + bridge)"])
    return results


def merge_results(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Result payloads of several runs (e.g. one per task, run in parallel) as one: the first run's
    fields, every run's command in `commands`, every (task, setting) result."""
    if not parts:
        raise ValueError("nothing to merge: give result files")
    merged = {**parts[0], "commands": [p.get("command", "") for p in parts], "results": {}}
    for part in parts:
        for task, settings in part["results"].items():
            merged["results"].setdefault(task, {}).update(settings)
    return merged


def write_results(payload: dict[str, Any], out: Any, plots_dir: Any = None) -> None:
    """The payload as JSON at `out`, its table as Markdown beside it, and PNG plots in `plots_dir`."""
    import json
    from pathlib import Path

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown_table(payload["results"]) + "\n")
    if plots_dir:
        Path(plots_dir).mkdir(parents=True, exist_ok=True)
        plot_results({t: {n: s for n, s in v.items() if "ROS" not in n} for t, v in payload["results"].items()},
                     plots_dir)  # fmt: skip
