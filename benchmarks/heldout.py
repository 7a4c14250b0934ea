"""Shared by benchmarks/warm_start.py and benchmarks/blending.py: the embedded model on held-out data.

Replay: every bag through OfflineReplay with the node's parameters (config/rd_vla_node.yaml), each
setting re-planning when its executed rows run out (`--stride horizon`), results pooled over bags.
Simulation: rd_vla_ros.sim.evaluate's closed loop (the sim-eval code path) on consecutive seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from rd_vla_ros.model.checkpoint import load_policy
from rd_vla_ros.model.config import InferenceSettings
from rd_vla_ros.paths import config_path, resolve_checkpoint, resolve_config
from rd_vla_ros.robot import RobotDescription
from rd_vla_ros.ros import params as P
from rd_vla_ros.ros.bags import BagSource, TopicMap
from rd_vla_ros.ros.replay import OfflineReplay
from rd_vla_ros.runtime.runner import PolicyRunner
from rd_vla_ros.sim.evaluate import evaluate, wilson


@dataclass
class Pooled:
    """One setting's replay statistics summed over bags."""

    name: str
    bags: int = 0
    iterations: list[int] = field(default_factory=list)
    horizons: list[int] = field(default_factory=list)
    exec_abs: float = 0.0
    exec_n: int = 0
    full_abs: float = 0.0
    full_n: int = 0
    jerk_sum: float = 0.0  # mean jerk x windows, summed
    jerk_windows: int = 0

    @property
    def exec_mae(self) -> float:
        return self.exec_abs / self.exec_n if self.exec_n else math.nan

    @property
    def full_mae(self) -> float:
        return self.full_abs / self.full_n if self.full_n else math.nan

    @property
    def jerk_mrad(self) -> float:
        """Mean |third difference| per control period of the arm joints' executed trajectory, mrad."""
        return 1e3 * self.jerk_sum / self.jerk_windows if self.jerk_windows else math.nan


def deployed_settings() -> tuple[dict, InferenceSettings]:
    values = P.values_from_file(config_path("rd_vla_node.yaml"))
    return values, P.inference_settings(values)


def make_runner(checkpoint: str, settings: InferenceSettings | None = None) -> tuple[PolicyRunner, RobotDescription]:
    values, deployed = deployed_settings()
    robot = RobotDescription.from_yaml(resolve_config(values["robot_description"]))
    policy = load_policy(resolve_checkpoint(checkpoint), torch.device("cpu"))
    return PolicyRunner(policy, robot.joint_names, list(values["camera_names"]), settings or deployed), robot


def replay_bags(
    runner: PolicyRunner,
    robot: RobotDescription,
    bags: list[Path],
    sweep: list[tuple[str, InferenceSettings]],
    blending: list[str],
) -> tuple[list[Pooled], float]:
    """Pooled statistics per (setting, blending mode) over `bags`, and the recorded commands' jerk (mrad)."""
    values, _ = deployed_settings()
    topic_map = TopicMap.from_yaml(config_path("topic_map_aloha.yaml"))
    engine = OfflineReplay(runner, robot, topic_map, P.assembly_limits(values), sweep, 1,
                           values["safety.velocity_scale"], values["safety.velocity_reference"], "horizon",
                           blending, values["blending.decay"])  # fmt: skip
    pooled: dict[str, Pooled] = {}
    recorded = [0.0, 0]
    for bag_path in bags:
        with BagSource(bag_path) as bag, torch.no_grad():
            result = engine.run(bag)
        recorded[0] += result.recorded_jerk["mean"] * result.recorded_jerk["windows"]
        recorded[1] += result.recorded_jerk["windows"]
        for stats in result.settings:
            p = pooled.setdefault(stats.name, Pooled(stats.name))
            p.bags += 1
            p.iterations += stats.iterations
            p.horizons += stats.execution_horizon
            p.exec_abs += float(stats.executed.abs_sum.sum())
            p.exec_n += int(stats.executed.count.sum())
            p.full_abs += float(stats.full.abs_sum.sum())
            p.full_n += int(stats.full.count.sum())
            if math.isfinite(stats.jerk["mean"]):
                p.jerk_sum += stats.jerk["mean"] * stats.jerk["windows"]
                p.jerk_windows += stats.jerk["windows"]
    return list(pooled.values()), 1e3 * recorded[0] / max(recorded[1], 1)


def sim_episodes(
    runner: PolicyRunner,
    robot: RobotDescription,
    task: str,
    seeds: list[int],
    sweep: list[tuple[str, InferenceSettings]],
    blending: str = "none",
) -> dict[str, dict]:
    """sim-eval's in-process closed loop: {setting name: summary} on `seeds`."""
    with torch.no_grad():
        return evaluate(runner, robot, [task], seeds, sweep, blending=blending)[task]


def success_cell(summary: dict, key: str = "success_reached") -> str:
    n = summary["episodes"]
    k = round(summary[key] * n)
    lo, hi = wilson(k, n)
    return f"{k}/{n} = {100 * k / n:.0f}% [{100 * lo:.0f}, {100 * hi:.0f}]"


def seed_range(seeds: list[int]) -> str:
    return f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else str(seeds[0])


def mean(values: list[int]) -> float:
    return float(np.mean(values)) if values else math.nan
