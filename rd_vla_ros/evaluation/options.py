"""What an evaluation runs, declared once: `ReplayOptions` (rd-vla replay, offline on a bag) and
`SimEvalOptions` (rd-vla sim-eval, closed loop in the simulation). Each field is the command's option of
the same name (rd_vla_ros.options); the modules doing the work (rd_vla_ros.ros.replay,
rd_vla_ros.sim.evaluate) take these objects, so the commands hold no logic of their own."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from rd_vla_ros.model.halting import HALTING_CRITERIA
from rd_vla_ros.options import option
from rd_vla_ros.runtime.blending import BLENDING_MODES


def replay_stride(text: str) -> int | str:
    """--stride: a number of control periods, or 'horizon'."""
    if text == "horizon":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of control periods or 'horizon', got '{text}'") from None


def blending_modes(text: str) -> list[str]:
    """--blending: one mode or several, comma-separated."""
    modes = [m.strip() for m in text.split(",") if m.strip()]
    wrong = [m for m in modes if m not in BLENDING_MODES]
    if wrong or not modes:
        raise argparse.ArgumentTypeError(f"blending modes are {', '.join(BLENDING_MODES)}; got '{text}'")
    return modes


@dataclass
class ReplayOptions:
    """What `rd-vla replay` evaluates; every field is the option of the same name."""

    bag: Path = option(help="rosbag2 directory (sqlite3 or mcap) or a .mcap / .db3 file", positional=True)
    checkpoint: str | None = option(None, "checkpoint directory (default: the params file's, 'embedded')")
    params: Path | None = option(None, "the node's --params-file YAML: deployed halting/horizon settings, age "
                                 "limits, cameras, robot (default: config/rd_vla_node.yaml)")  # fmt: skip
    topic_map: Path | None = option(None, "topic map YAML (default: config/topic_map_aloha.yaml)")
    robot: str | None = option(None, "the robot: a robot YAML, a .urdf file, or a file name in config/ (default: "
                               "the --params file's robot_description)")  # fmt: skip
    instruction: str | None = option(None, "instruction to use (overrides the topic map's default)")
    out: Path | None = option(None, "report directory (default: replay_<bag name>)")
    thresholds: list[float] = option(help="adaptive thresholds to sweep",
                                     factory=lambda: [1e-2, 3e-3, 1e-3, 3e-4, 1e-4])  # fmt: skip
    halting: str | None = option(None, "halting strategy of the swept thresholds (default: the deployed one)",
                                 choices=tuple(HALTING_CRITERIA))  # fmt: skip
    fixed_depths: list[int] = option(help="fixed depths to sweep", factory=lambda: [1, 2, 4, 8, 12, 16, 32])
    stride: int | str = option(1, "control periods between inference ticks, or 'horizon': every setting re-plans "
                               "when its executed rows run out, as the node does (default 1)", metavar="N|horizon",
                               parse=replay_stride)  # fmt: skip
    blending: list[str] | None = option(None, f"chunk blending ({', '.join(BLENDING_MODES)}); several: every "
                                        "setting with each (default: the params file's blending.mode)",
                                        metavar="MODE[,MODE...]", parse=blending_modes)  # fmt: skip
    warm_start: bool | None = option(None, "warm-start the scratchpad from the previous chunk's (default: the "
                                     "params file's halting.warm_start)")  # fmt: skip
    warm_start_shift: bool | None = option(None, "shift the carried scratchpad by the rows executed (default: the "
                                           "params file's halting.warm_start_shift)")  # fmt: skip
    start: float = option(0.0, "seconds into the bag to start evaluating")
    duration: float | None = option(None, "seconds to evaluate (default: to the end)")
    tolerance: float = option(0.05, "recommend the cheapest threshold within this relative MAE of the best setting")
    device: str = option("cpu", "torch device of the model")
    threads: int = option(0, "torch CPU threads (0 = cores - 1)")
    live: Path | None = option(None, "a bag recorded with `rd-vla play --record`: compare the node's chunks")
    live_topic: str | None = option(None, "ActionChunk topic in --live (default: the only one)")
    no_plots: bool = option(False, "no PNG plots")
    quiet: bool = option(False, "no progress bar")


@dataclass
class SimEvalOptions:
    """What `rd-vla sim-eval` evaluates; every field is the option of the same name."""

    checkpoint: str = option("embedded", "checkpoint directory, or 'embedded'")
    tasks: list[str] = option(help="tasks to evaluate (default: transfer_cube insertion)",
                              factory=lambda: ["transfer_cube", "insertion"])  # fmt: skip
    episodes: int = option(20, "episodes per task and setting")
    seed: int = option(1000, "first held-out seed (training demonstrations use seeds below 1000)")
    depths: list[int] = option(help="fixed depths", factory=lambda: [1, 2, 4, 8, 12, 16, 32])
    thresholds: list[float] = option(help="adaptive thresholds", factory=lambda: [1e-2, 3e-3, 1e-3, 3e-4])
    horizon: str | None = option(None, "execution-horizon schedule for every setting, e.g. 'fixed:h=8' or "
                                 "'linear:h_min=4' (default: the checkpoint's, the node's default)",
                                 metavar="SCHEDULE[:KEY=VALUE,...]")  # fmt: skip
    blending: str = option("none", "chunk blending, as the node's blending.mode", choices=BLENDING_MODES)
    warm_start: bool | None = option(None, "warm-start the scratchpad from the previous chunk's, as the node's "
                                     "halting.warm_start (default: the checkpoint's inference setting)")  # fmt: skip
    warm_start_shift: bool | None = option(None, "shift the carried scratchpad by the rows executed, as the node's "
                                           "halting.warm_start_shift (default: the checkpoint's inference "
                                           "setting)")  # fmt: skip
    ros: bool = option(False, "run the deployed setting through rd_vla_node + the sim bridge over DDS instead")
    real_time_factor: float = option(0.5, "--ros: simulated seconds per wall second")
    threads: int = option(1, "torch CPU threads")

    @property
    def seeds(self) -> list[int]:
        return list(range(self.seed, self.seed + self.episodes))
