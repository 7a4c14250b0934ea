"""`rd-vla`: the package's command line.

rd-vla init-checkpoint OUT [--robot R] [--cameras ...]  write a randomly initialised checkpoint for a robot
rd-vla info CHECKPOINT                                  print a checkpoint's configuration summary
rd-vla bag-info BAG [--topic-map YAML]                  list a bag's topics, check them against a topic map
rd-vla demo-bag OUT [--seconds 4] [--storage mcap]      write a small ALOHA-style recording with known content
rd-vla replay BAG --checkpoint DIR [--out DIR] ...      evaluate a checkpoint offline on a bag; sweep halting
rd-vla play BAG [--rate 1] [--clock] [--record OUT]     publish a bag into a running ROS graph (live replay)
rd-vla train BAG... --out DIR [--steps N] [--resume]    train from recorded bags (accelerate / torchrun DDP)
rd-vla sim-demos OUT [--episodes 50]                    scripted ALOHA demonstrations recorded as bags
rd-vla sim-eval --checkpoint DIR [--episodes 20]        closed-loop success vs recurrent depth in the simulation
rd-vla export CHECKPOINT OUT                            ONNX graphs (encode, head step, loop) + manifest for onnxruntime

Each command is a parser (its options: for replay, train and sim-eval generated from the dataclass
that carries them) and a handler that calls the module doing the work; `main` turns a user's
mistake (a ValueError or OSError with a one-line message) into one line on stderr and exit 1.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from rd_vla_ros.options import add_options, from_namespace

Handler = Callable[[argparse.Namespace, list[str]], int]


class UsageError(ValueError):
    """Options that contradict each other: exit 2, as argparse does for malformed ones."""


def out(text: str) -> None:
    sys.stdout.write(text + "\n")


# ---- handlers: parse nothing, decide nothing; each calls its module


def init_checkpoint(args: argparse.Namespace, argv: list[str]) -> int:
    from rd_vla_ros.model.checkpoint import init_checkpoint as write
    from rd_vla_ros.robot import RobotDescription, policy_cameras

    robot = RobotDescription.load(args.robot or "aloha_bimanual.yaml")
    cameras = policy_cameras(args.cameras, args.no_cameras, robot)
    path = write(args.out, args.preset, args.seed, robot.joint_names, cameras, robot.name)
    what = f"cameras [{', '.join(cameras)}]" if cameras else "no cameras (state-only)"
    out(f"wrote an untrained {args.preset} checkpoint for {robot.name} ({robot.num_joints} joints, {what}) to {path}")
    return 0


def info(args: argparse.Namespace, argv: list[str]) -> int:
    from rd_vla_ros.model.checkpoint import describe_checkpoint

    out(describe_checkpoint(args.checkpoint))
    return 0


def bag_info(args: argparse.Namespace, argv: list[str]) -> int:
    """Exit 0 whether or not the bag fits the topic map; 1 only when either cannot be read."""
    from rd_vla_ros.paths import config_path
    from rd_vla_ros.ros.bags import describe_bag

    out(describe_bag(args.bag, args.topic_map or config_path("topic_map_aloha.yaml")))
    return 0


def demo_bag(args: argparse.Namespace, argv: list[str]) -> int:
    from rd_vla_ros.demos.demo_bag import write_demo_bag, write_robot_demo_bag

    if args.robot:
        path = write_robot_demo_bag(args.out, args.robot, args.seconds, args.storage, args.instruction)
    else:
        path = write_demo_bag(args.out, seconds=args.seconds, storage=args.storage, instruction=args.instruction)
    out(f"wrote a {args.seconds:g} s {args.storage} recording to {path}")
    return 0


def replay(args: argparse.Namespace, argv: list[str]) -> int:
    from rd_vla_ros.evaluation.options import ReplayOptions
    from rd_vla_ros.evaluation.report import format_summary
    from rd_vla_ros.ros.replay import replay_bag

    summary, report = replay_bag(from_namespace(ReplayOptions, args), "rd-vla " + shlex.join(argv))
    out(format_summary(summary) + f"\nreport: {report / 'report.md'} (and report.json, PNG plots)")
    return 0


def play(args: argparse.Namespace, argv: list[str]) -> int:
    from rd_vla_ros.ros.play import play_main

    return play_main(args)


def train(args: argparse.Namespace, argv: list[str]) -> int:
    import os

    import torch

    from rd_vla_ros.train.config import TrainConfig
    from rd_vla_ros.train.trainer import train as run

    if args.no_cameras and args.cameras:
        raise UsageError("--cameras and --no-cameras contradict each other: give one")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 1) // world))
    cfg = from_namespace(TrainConfig, args, **({"cameras": []} if args.no_cameras else {}))
    summary = run(cfg, resume=args.resume, show_progress=not args.quiet)
    if int(os.environ.get("RANK", "0")) == 0:
        out(f"trained {summary['steps']} steps (from {summary['resumed_from']}) on {summary['episodes']} episodes "
            f"({summary['samples']} samples, tasks {summary['tasks']}), last l1 {summary['last_l1']:.4f}; "
            f"checkpoint in {args.out}/checkpoint")  # fmt: skip
    return 0


def sim_demos(args: argparse.Namespace, argv: list[str]) -> int:
    """Record scripted demonstrations until `--episodes` succeeded per task (existing bags are kept)."""
    from rd_vla_ros.sim.aloha import parse_resolution
    from rd_vla_ros.sim.scripted import Disturbance, record_demos

    try:
        disturbance = Disturbance(args.disturbance) if args.disturbance > 0 else None
        resolution = parse_resolution(args.resolution)
    except ValueError as err:
        raise UsageError(str(err)) from None
    record_demos(args.out, args.tasks, args.episodes, args.seed, tuple(args.cameras), resolution, args.storage,
                 disturbance, log=out)  # fmt: skip
    return 0


def sim_eval(args: argparse.Namespace, argv: list[str]) -> int:
    from rd_vla_ros.evaluation.options import SimEvalOptions
    from rd_vla_ros.sim.evaluate import merge_results, run_sim_eval, write_results

    command = "rd-vla " + shlex.join(argv)
    if args.merge:
        payload = {**merge_results([json.loads(p.read_text()) for p in args.merge]), "command": command}
        write_results(payload, args.out, args.plots)
        out(args.out.with_suffix(".md").read_text().rstrip("\n"))
        out(f"merged {len(args.merge)} result files into {args.out} (table: .md beside it)")
        return 0
    options = from_namespace(SimEvalOptions, args)
    if options.ros and (options.horizon or options.warm_start is not None or options.warm_start_shift is not None):
        raise UsageError("--ros runs the node's deployed settings; --horizon and --warm-start are in-process only")

    def progress(task: str, name: str, s: dict) -> None:
        out(
            f"{task:14s} {name:18s} success reached {s['success_reached']:.2f} final {s['success_final']:.2f} "
            f"mean k* {s['mean_iterations']:.2f} H_exec {s['mean_execution_horizon']:.2f} ({s['wall_s']:.0f} s)"
        )
        sys.stdout.flush()

    payload = {"command": command, **run_sim_eval(options, progress)}
    write_results(payload, args.out, args.plots)
    out(f"results: {args.out} (table: .md beside it)")
    return 0


def export(args: argparse.Namespace, argv: list[str]) -> int:
    from rd_vla_ros.export.onnx import export as write
    from rd_vla_ros.model.checkpoint import check_fit, load_policy, read_config
    from rd_vla_ros.paths import resolve_checkpoint
    from rd_vla_ros.robot import RobotDescription

    checkpoint = resolve_checkpoint(args.checkpoint)
    if args.robot:
        robot = RobotDescription.load(args.robot)
        check_fit(read_config(checkpoint)[0], robot.joint_names, robot=f"robot '{robot.name}'")
    manifest = write(load_policy(checkpoint), args.out)
    out(f"exported {', '.join(g['file'] for g in manifest['graphs'].values())} and manifest.json to {args.out}")
    return 0


# ---- parsers


def parser() -> argparse.ArgumentParser:
    """The `rd-vla` parser; each subcommand's handler is its `run` default."""
    from rd_vla_ros.evaluation.options import ReplayOptions, SimEvalOptions
    from rd_vla_ros.train.config import TrainConfig

    root = argparse.ArgumentParser(
        prog="rd-vla", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = root.add_subparsers(dest="command", required=True)

    def command(name: str, run: Handler, help: str, **kwargs) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, **kwargs)
        p.set_defaults(run=run)
        return p

    p = command("init-checkpoint", init_checkpoint, "write a randomly initialised (untrained) checkpoint")
    p.add_argument("out", type=Path)
    p.add_argument("--preset", default="tiny", choices=["tiny", "conv", "paper"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--robot", default=None, help="the robot: a robot YAML, a .urdf file, or a file name in config/ "
                   "(default: aloha_bimanual.yaml)")  # fmt: skip
    p.add_argument("--cameras", nargs="+", default=None, metavar="NAME",
                   help="cameras the policy sees, in order (default: the robot file's cameras)")  # fmt: skip
    add_no_cameras(p)

    p = command("info", info, "summarise a checkpoint")
    p.add_argument("checkpoint", type=Path)

    p = command("bag-info", bag_info, "list a bag's topics and check them against a topic map")
    p.add_argument("bag", type=Path, help="rosbag2 directory (sqlite3 or mcap) or a .mcap / .db3 file")
    p.add_argument("--topic-map", type=Path, default=None, help="topic map YAML (default: config/topic_map_aloha.yaml)")

    p = command("demo-bag", demo_bag, "write a small ALOHA-style recording with known content")
    p.add_argument("out", type=Path, help="new bag directory (must not exist)")
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--storage", default="mcap", choices=["mcap", "sqlite3"])
    p.add_argument("--robot", default=None, help="record this robot instead (a robot YAML / .urdf): its joints, "
                   "its cameras' topics, one JointTrajectory per arm on the arm's controller topic")  # fmt: skip
    p.add_argument("--instruction", default="transfer the cube", help="the recorded instruction")

    p = command("replay", replay, "evaluate a checkpoint offline on a bag and sweep halting settings",
                description="Replays BAG through the node's input code and policy runner, scores every predicted "
                "chunk against the recorded commands, and writes report.json, report.md and PNG plots.")  # fmt: skip
    add_options(p, ReplayOptions)

    p = command("play", play, "publish a bag into a running ROS graph, paced by its timestamps")
    p.add_argument("bag", type=Path)
    p.add_argument("--rate", type=float, default=1.0, help="playback speed factor (2 = twice as fast)")
    p.add_argument("--clock", type=float, nargs="?", const=100.0, default=0.0, metavar="HZ",
                   help="publish /clock at HZ (default 100 when given) for nodes with use_sim_time")  # fmt: skip
    p.add_argument("--topics", nargs="+", default=None, help="only these topics")
    p.add_argument("--start-delay", type=float, default=1.0,
                   help="seconds to wait (after --wait-for) for discovery before the first message")  # fmt: skip
    p.add_argument("--wait-for", nargs="+", default=[], metavar="TOPIC",
                   help="wait until each of these topics has a subscriber before the first message")  # fmt: skip
    p.add_argument("--wait-timeout", type=float, default=60.0,
                   help="seconds --wait-for waits before giving up (exit 1)")  # fmt: skip
    p.add_argument("--record", type=Path, default=None, help="record what the graph publishes into this new bag")
    p.add_argument("--record-topics", nargs="+", default=None,
                   help="topics to record (default: every ActionChunk and JointTrajectory topic seen)")  # fmt: skip
    p.add_argument("--record-storage", default="mcap", choices=["mcap", "sqlite3"])
    p.add_argument("--tail", type=float, default=2.0, help="seconds to keep recording after the last message")

    p = command("train", train, "train a policy from recorded bags (randomized depth, truncated BPTT)")
    add_options(p, TrainConfig)
    add_no_cameras(p)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads per process (0 = all cores / processes)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = command("sim-demos", sim_demos, "scripted ALOHA demonstrations, recorded as rosbag2 bags")
    p.add_argument("out", type=Path, help="directory for the bags (<task>_<seed>/)")
    p.add_argument("--tasks", nargs="+", default=["transfer_cube", "insertion"])
    p.add_argument("--episodes", type=int, default=50, help="successful demonstrations per task")
    p.add_argument("--seed", type=int, default=0, help="first seed (training seeds; evaluation uses 1000+)")
    p.add_argument("--resolution", default="160x120", metavar="WxH", help="camera image size (default 160x120)")
    p.add_argument("--cameras", nargs="+", default=["top"], help="cameras to record (default: top)")
    p.add_argument("--storage", default="mcap", choices=["mcap", "sqlite3"])
    p.add_argument("--disturbance", type=float, default=0.0, metavar="RAD",
                   help="DART-style noise on the executed arm commands: each episode's std drawn from [0, RAD] "
                        "(the bag records the undisturbed command as the label); 0 = none")  # fmt: skip

    p = command("sim-eval", sim_eval, "closed-loop success in the ALOHA simulation vs recurrent depth")
    add_options(p, SimEvalOptions)
    p.add_argument("--out", type=Path, default=Path("sim_eval.json"), help="results JSON (a .md table beside it)")
    p.add_argument("--plots", type=Path, default=None, help="directory for the PNG plots")
    p.add_argument("--merge", type=Path, nargs="+", default=None,
                   help="merge result files of earlier runs (e.g. one per task, in parallel) into --out")  # fmt: skip

    p = command("export", export, "export a checkpoint as ONNX graphs for onnxruntime (node runtime:=onnxruntime)")
    p.add_argument("checkpoint", help="checkpoint directory or 'embedded'")
    p.add_argument("out", type=Path, help="output directory (encode, head_step, head_loop .onnx; manifest.json)")
    p.add_argument("--robot", default=None, help="refuse unless the checkpoint was made for this robot's joints")
    return root


def add_no_cameras(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-cameras", action="store_true",
                   help="a state-only policy: instruction + joint positions, no camera")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser().parse_args(argv)
    try:
        return args.run(args, argv)
    except UsageError as err:
        sys.stderr.write(f"rd-vla {args.command}: {err}\n")
        return 2
    except (ValueError, OSError) as err:  # CheckpointError, BagError, ReplayError, RobotDescriptionError, ...
        sys.stderr.write(f"rd-vla {args.command}: {err}\n")
        return 1
    except ModuleNotFoundError as err:  # e.g. the simulation in an environment made without it
        if (err.name or "rd_vla_ros").split(".")[0] == "rd_vla_ros":
            raise  # a bug of the package itself, not a missing dependency: the traceback says where
        sys.stderr.write(f"rd-vla {args.command}: {err.name} is not installed in {sys.prefix}: `make setup` installs "
                         "everything (the Jazzy environment has no simulation)\n")  # fmt: skip
        return 1
    except KeyboardInterrupt:
        sys.stderr.write(f"rd-vla {args.command}: interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
