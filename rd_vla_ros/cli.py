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
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rd_vla_ros.model.checkpoint import CheckpointError, read_config, save_policy
from rd_vla_ros.runtime.blending import BLENDING_MODES

if TYPE_CHECKING:
    from rd_vla_ros.model.config import InferenceSettings
    from rd_vla_ros.robot import RobotDescription
    from rd_vla_ros.sim.scripted import Demonstration

DEFAULT_THRESHOLDS = "1e-2,3e-3,1e-3,3e-4,1e-4"
DEFAULT_FIXED_DEPTHS = "1,2,4,8,12,16,32"


def init_checkpoint(
    out: Path, preset: str, seed: int, robot: RobotDescription | None = None, cameras: list[str] | None = None
) -> Path:
    """An UNTRAINED policy (random weights, identity normalisation): for tests, demos and benchmarks.
    For `robot`'s joints (default ALOHA's) and `cameras` (default ALOHA's top camera; [] = state-only)."""
    import torch

    from rd_vla_ros.model.config import make_config
    from rd_vla_ros.model.policy import RDVLAPolicy

    torch.manual_seed(seed)
    policy = RDVLAPolicy(make_config(preset, robot.joint_names if robot else None, cameras))
    extra = {"trained": False, "seed": seed, "preset": preset, "robot": robot.name if robot else "aloha_bimanual"}
    return save_policy(policy, out, extra=extra)


def init_checkpoint_command(args: argparse.Namespace) -> int:
    from rd_vla_ros.robot import RobotDescription, policy_cameras

    try:
        robot = RobotDescription.load(args.robot or "aloha_bimanual.yaml")
        cameras = policy_cameras(args.cameras, args.no_cameras, robot)
        path = init_checkpoint(args.out, args.preset, args.seed, robot, cameras)
    except (ValueError, OSError) as err:  # RobotDescriptionError, CheckpointError are ValueErrors
        sys.stderr.write(f"rd-vla init-checkpoint: {err}\n")
        return 1
    what = f"cameras [{', '.join(cameras)}]" if cameras else "no cameras (state-only)"
    sys.stdout.write(
        f"wrote an untrained {args.preset} checkpoint for {robot.name} ({robot.num_joints} joints, {what}) to {path}\n"
    )
    return 0


def _add_robot_options(parser: argparse.ArgumentParser, cameras_default: str) -> None:
    """--robot, --cameras, --no-cameras: what a checkpoint is made for."""
    parser.add_argument("--robot", default=None, help="the robot: a robot YAML, a .urdf file, or a file name in "
                        "config/ (default: the --params file's robot_description, aloha_bimanual.yaml)")  # fmt: skip
    parser.add_argument("--cameras", nargs="+", default=None, metavar="NAME",
                        help=f"cameras the policy sees, in order (default: {cameras_default})")  # fmt: skip
    parser.add_argument("--no-cameras", action="store_true",
                        help="a state-only policy: instruction + joint positions, no camera")  # fmt: skip


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def _yes_no(text: str) -> bool:
    if text.lower() not in ("yes", "no"):
        raise argparse.ArgumentTypeError(f"expected yes or no, got '{text}'")
    return text.lower() == "yes"


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _stride(text: str) -> int | str:
    if text == "horizon":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of control periods or 'horizon', got '{text}'") from None


def _blending_modes(text: str) -> list[str]:
    modes = [m.strip() for m in text.split(",") if m.strip()]
    wrong = [m for m in modes if m not in BLENDING_MODES]
    if wrong or not modes:
        raise argparse.ArgumentTypeError(f"blending modes are {', '.join(BLENDING_MODES)}; got '{text}'")
    return modes


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rd-vla", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init-checkpoint", help="write a randomly initialised (untrained) checkpoint")
    init.add_argument("out", type=Path)
    init.add_argument("--preset", default="tiny", choices=["tiny", "conv", "paper"])
    init.add_argument("--seed", type=int, default=0)
    _add_robot_options(init, "the robot file's cameras")
    info = sub.add_parser("info", help="summarise a checkpoint")
    info.add_argument("checkpoint", type=Path)
    bag = sub.add_parser("bag-info", help="list a bag's topics and check them against a topic map")
    bag.add_argument("bag", type=Path, help="rosbag2 directory (sqlite3 or mcap) or a .mcap / .db3 file")
    bag.add_argument(
        "--topic-map", type=Path, default=None, help="topic map YAML (default: config/topic_map_aloha.yaml)"
    )

    demo = sub.add_parser("demo-bag", help="write a small ALOHA-style recording with known content")
    demo.add_argument("out", type=Path, help="new bag directory (must not exist)")
    demo.add_argument("--seconds", type=float, default=4.0)
    demo.add_argument("--storage", default="mcap", choices=["mcap", "sqlite3"])
    demo.add_argument("--robot", default=None, help="record this robot instead (a robot YAML / .urdf): its joints, "
                      "its cameras' topics, one JointTrajectory per arm on the arm's controller topic")  # fmt: skip
    demo.add_argument("--instruction", default="transfer the cube", help="the recorded instruction")

    rep = sub.add_parser(
        "replay", help="evaluate a checkpoint offline on a bag and sweep halting settings",
        description="Replays BAG through the node's input code and policy runner, scores every predicted chunk "
        "against the recorded commands, and writes report.json, report.md and PNG plots.",
    )  # fmt: skip
    rep.add_argument("bag", type=Path, help="rosbag2 directory (sqlite3 or mcap) or a .mcap / .db3 file")
    rep.add_argument("--checkpoint", default=None, help="checkpoint directory (default: the params file's, 'embedded')")
    rep.add_argument("--params", type=Path, default=None,
                     help="the node's --params-file YAML: deployed halting/horizon settings, age limits, cameras, "
                     "robot (default: config/rd_vla_node.yaml)")  # fmt: skip
    rep.add_argument(
        "--topic-map", type=Path, default=None, help="topic map YAML (default: config/topic_map_aloha.yaml)"
    )
    rep.add_argument("--robot", default=None, help="the robot: a robot YAML, a .urdf file, or a file name in "
                     "config/ (default: the --params file's robot_description)")  # fmt: skip
    rep.add_argument("--instruction", default=None, help="instruction to use (overrides the topic map's default)")
    rep.add_argument("--out", type=Path, default=None, help="report directory (default: replay_<bag name>)")
    rep.add_argument("--thresholds", default=DEFAULT_THRESHOLDS, help="adaptive thresholds to sweep, comma-separated")
    rep.add_argument("--halting", default=None, help="halting strategy of the swept thresholds (default: deployed)")
    rep.add_argument("--fixed-depths", default=DEFAULT_FIXED_DEPTHS, help="fixed depths to sweep, comma-separated")
    rep.add_argument("--stride", type=_stride, default=1, metavar="N|horizon",
                     help="control periods between inference ticks, or 'horizon': every setting re-plans when its "
                          "executed rows run out, as the node does (default 1)")  # fmt: skip
    rep.add_argument("--blending", type=_blending_modes, default=None, metavar="MODE[,MODE...]",
                     help=f"chunk blending ({', '.join(BLENDING_MODES)}); several: every setting with each "
                          "(default: the params file's blending.mode)")  # fmt: skip
    rep.add_argument("--warm-start", type=_yes_no, default=None, metavar="yes|no",
                     help="warm-start the scratchpad from the previous chunk's (default: the params file's "
                          "halting.warm_start)")  # fmt: skip
    rep.add_argument("--warm-start-shift", type=_yes_no, default=None, metavar="yes|no",
                     help="shift the carried scratchpad by the rows executed (default: the params file's "
                          "halting.warm_start_shift)")  # fmt: skip
    rep.add_argument("--start", type=float, default=0.0, help="seconds into the bag to start evaluating")
    rep.add_argument("--duration", type=float, default=None, help="seconds to evaluate (default: to the end)")
    rep.add_argument("--tolerance", type=float, default=0.05,
                     help="recommend the cheapest threshold within this relative MAE of the best setting")  # fmt: skip
    rep.add_argument("--device", default="cpu")
    rep.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = cores - 1)")
    rep.add_argument(
        "--live", type=Path, default=None, help="a bag recorded with `rd-vla play --record`: compare the node's chunks"
    )
    rep.add_argument("--live-topic", default=None, help="ActionChunk topic in --live (default: the only one)")
    rep.add_argument("--no-plots", action="store_true")
    rep.add_argument("--quiet", action="store_true", help="no progress bar")

    play = sub.add_parser("play", help="publish a bag into a running ROS graph, paced by its timestamps")
    play.add_argument("bag", type=Path)
    play.add_argument("--rate", type=float, default=1.0, help="playback speed factor (2 = twice as fast)")
    play.add_argument("--clock", type=float, nargs="?", const=100.0, default=0.0, metavar="HZ",
                      help="publish /clock at HZ (default 100 when given) for nodes with use_sim_time")  # fmt: skip
    play.add_argument("--topics", nargs="+", default=None, help="only these topics")
    play.add_argument("--start-delay", type=float, default=1.0,
                      help="seconds to wait (after --wait-for) for discovery before the first message")  # fmt: skip
    play.add_argument("--wait-for", nargs="+", default=[], metavar="TOPIC",
                      help="wait until each of these topics has a subscriber before the first message")  # fmt: skip
    play.add_argument("--wait-timeout", type=float, default=60.0,
                      help="seconds --wait-for waits before giving up (exit 1)")  # fmt: skip
    play.add_argument("--record", type=Path, default=None, help="record what the graph publishes into this new bag")
    play.add_argument("--record-topics", nargs="+", default=None,
                      help="topics to record (default: every ActionChunk and JointTrajectory topic seen)")  # fmt: skip
    play.add_argument("--record-storage", default="mcap", choices=["mcap", "sqlite3"])
    play.add_argument("--tail", type=float, default=2.0, help="seconds to keep recording after the last message")
    tr = sub.add_parser("train", help="train a policy from recorded bags (randomized depth, truncated BPTT)")
    tr.add_argument("bags", nargs="+", help="rosbag2 recordings (directories or .mcap/.db3 files)")
    tr.add_argument("--out", required=True, help="run directory: checkpoint/, tb/, cache/, train_summary.json")
    tr.add_argument("--steps", type=int, default=20_000)
    tr.add_argument("--batch-size", type=int, default=32)
    tr.add_argument("--lr", type=float, default=3e-4)
    tr.add_argument("--weight-decay", type=float, default=1e-4)
    tr.add_argument("--min-lr-ratio", type=float, default=0.1, help="the cosine schedule ends at this share of --lr")
    tr.add_argument("--grad-clip", type=float, default=1.0, help="gradient norm clip")
    tr.add_argument("--train-backbone", type=_yes_no, default=None, metavar="yes|no",
                    help="train the backbone too (default: yes unless it has pretrained weights)")  # fmt: skip
    tr.add_argument("--warmup-steps", type=int, default=500)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--preset", default="tiny", choices=["tiny", "conv", "paper"])
    _add_robot_options(tr, "the robot file's cameras, else the --params file's camera_names, else the topic map's")
    tr.add_argument("--depth-mean", type=float, default=None, help="mean training recurrence (default: 32)")
    tr.add_argument("--shift", type=int, default=4, help="random-shift augmentation in pixels (0 = off)")
    tr.add_argument("--crop", action="append", default=[], metavar="CAMERA=L,T,R,B",
                    help="region of a camera's frame the policy sees, as fractions (left, top, right, bottom); "
                         "repeat per camera (default: whole frames)")  # fmt: skip
    tr.add_argument("--patch-size", type=int, default=None, help="vision patch size in pixels (default: the preset's)")
    tr.add_argument("--proprio-dropout", type=float, default=0.0,
                    help="share of samples trained without joint positions (forces use of the cameras)")  # fmt: skip
    tr.add_argument("--proprio-noise", type=float, default=0.0, metavar="STD",
                    help="Gaussian noise on the joint positions the policy sees (rad; targets stay clean): "
                         "stops it from reading the trajectory off the joints instead of the cameras")  # fmt: skip
    tr.add_argument("--log-every", type=int, default=50)
    tr.add_argument("--save-every", type=int, default=1000)
    tr.add_argument("--topic-map", default=None, help="topic map YAML (default: config/topic_map_aloha.yaml)")
    tr.add_argument("--params", default=None, help="node parameter file: cameras, robot, age limits")
    tr.add_argument("--cache-dir", default=None, help="decoded-episode cache (default: OUT/cache)")
    tr.add_argument("--threads", type=int, default=0, help="torch CPU threads per process (0 = all cores / processes)")
    tr.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    tr.add_argument("--quiet", action="store_true", help="no progress bars")
    demos = sub.add_parser("sim-demos", help="scripted ALOHA demonstrations, recorded as rosbag2 bags")
    demos.add_argument("out", type=Path, help="directory for the bags (<task>_<seed>/)")
    demos.add_argument("--tasks", nargs="+", default=["transfer_cube", "insertion"])
    demos.add_argument("--episodes", type=int, default=50, help="successful demonstrations per task")
    demos.add_argument("--seed", type=int, default=0, help="first seed (training seeds; evaluation uses 1000+)")
    demos.add_argument("--resolution", default="160x120", metavar="WxH", help="camera image size (default 160x120)")
    demos.add_argument("--cameras", nargs="+", default=["top"], help="cameras to record (default: top)")
    demos.add_argument("--storage", default="mcap", choices=["mcap", "sqlite3"])
    demos.add_argument("--disturbance", type=float, default=0.0, metavar="RAD",
                       help="DART-style noise on the executed arm commands: each episode's std drawn from "
                            "[0, RAD] (the bag records the undisturbed command as the label); 0 = none")  # fmt: skip

    ev = sub.add_parser("sim-eval", help="closed-loop success in the ALOHA simulation vs recurrent depth")
    ev.add_argument("--checkpoint", default="embedded")
    ev.add_argument("--tasks", nargs="+", default=["transfer_cube", "insertion"])
    ev.add_argument("--episodes", type=int, default=20, help="episodes per task and setting")
    ev.add_argument("--seed", type=int, default=1000, help="first held-out seed")
    ev.add_argument("--depths", default="1,2,4,8,12,16,32", help="fixed depths, comma-separated")
    ev.add_argument("--thresholds", default="1e-2,3e-3,1e-3,3e-4", help="adaptive thresholds, comma-separated")
    ev.add_argument("--horizon", default=None, metavar="SCHEDULE[:KEY=VALUE,...]",
                    help="execution-horizon schedule for every setting, e.g. 'fixed:h=8' or 'linear:h_min=4' "
                         "(default: the checkpoint's, the node's default)")  # fmt: skip
    ev.add_argument("--blending", default="none", choices=BLENDING_MODES,
                    help="chunk blending, as the node's blending.mode (default none)")  # fmt: skip
    ev.add_argument("--warm-start", type=_yes_no, default=None, metavar="yes|no",
                    help="warm-start the scratchpad from the previous chunk's, as the node's halting.warm_start "
                         "(default: the checkpoint's inference setting)")  # fmt: skip
    ev.add_argument("--warm-start-shift", type=_yes_no, default=None, metavar="yes|no",
                    help="shift the carried scratchpad by the rows executed, as the node's halting.warm_start_shift "
                         "(default: the checkpoint's inference setting)")  # fmt: skip
    ev.add_argument("--out", type=Path, default=Path("sim_eval.json"), help="results JSON")
    ev.add_argument("--plots", type=Path, default=None, help="directory for the PNG plots")
    ev.add_argument("--threads", type=int, default=1)
    ev.add_argument("--ros", action="store_true",
                    help="run the deployed setting through rd_vla_node + the sim bridge over DDS instead")  # fmt: skip
    ev.add_argument("--real-time-factor", type=float, default=0.5, help="--ros: simulated seconds per wall second")
    ev.add_argument("--merge", type=Path, nargs="+", default=None,
                    help="merge result files of earlier runs (e.g. one per task, in parallel) into --out")  # fmt: skip
    ex = sub.add_parser("export", help="export a checkpoint as ONNX graphs for onnxruntime (node runtime:=onnxruntime)")
    ex.add_argument("checkpoint", help="checkpoint directory or 'embedded'")
    ex.add_argument("out", type=Path, help="output directory (encode, head_step, head_loop .onnx; manifest.json)")
    ex.add_argument("--robot", default=None, help="refuse unless the checkpoint was made for this robot's joints")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "bag-info":
        return bag_info(args.bag, args.topic_map)
    if args.command == "init-checkpoint":
        return init_checkpoint_command(args)
    if args.command == "demo-bag":
        return demo_bag(args.out, args.seconds, args.storage, args.robot, args.instruction)
    if args.command == "replay":
        return replay(args, argv if argv is not None else sys.argv[1:])
    if args.command == "sim-demos":
        return sim_demos(args)
    if args.command == "sim-eval":
        return sim_eval(args, argv if argv is not None else sys.argv[1:])
    if args.command == "train":
        return train_command(args)
    if args.command == "export":
        return export_command(args)
    if args.command == "play":
        from rd_vla_ros.ros.play import play_main

        return play_main(args)
    try:
        config, extra = read_config(args.checkpoint)
    except CheckpointError as err:
        sys.stderr.write(f"rd-vla info: {err}\n")
        return 1
    sys.stdout.write(
        f"joints: {config.joint_names}\ncameras: {config.camera_names}\nchunk: {config.head.chunk_length} x "
        f"{config.control_period_s} s\nhead: D={config.head.d_model}, {config.head.num_core_layers} tied layers\n"
        f"backbone: {config.backbone.vision_encoders}, image {config.backbone.image_size} px\n"
        f"inference: {config.inference}\nextra: {extra}\n"
    )
    return 0


def bag_info(path: Path, topic_map_path: Path | None) -> int:
    """List any bag's topics and say whether it fits the topic map (exit 0 either way); exit 1 only when
    the bag or the topic map cannot be read."""
    from rd_vla_ros.paths import config_path
    from rd_vla_ros.ros.bags import BagError, BagSource, TopicMap

    map_path = topic_map_path or config_path("topic_map_aloha.yaml")
    try:
        topic_map = TopicMap.from_yaml(map_path)
        with BagSource(path) as source:
            duration = (source.end_ns - source.start_ns) / 1e9 if source.message_count else 0.0
            sys.stdout.write(f"{path}: {source.message_count} messages over {duration:.2f} s\n")
            for info in sorted(source.topics.values(), key=lambda t: t.name):
                sys.stdout.write(f"  {info.name:50s} {info.msgtype:40s} {info.count}\n")
            for topic, why in source.repaired.items():
                sys.stdout.write(f"note: {topic}: {why}; it is read with the storage file's\n")
            try:
                source.require(topic_map.required_topics(), topic_map.optional_topics())
            except BagError as misfit:
                sys.stdout.write(f"does not fit the topic map {map_path}: {misfit}\n")
                return 0
    except (BagError, ValueError, OSError) as err:
        sys.stderr.write(f"rd-vla bag-info: {err}\n")
        return 1
    sys.stdout.write(f"the bag has every topic the topic map needs ({map_path})\n")
    return 0


def demo_bag(out: Path, seconds: float, storage: str, robot_file: str | None = None, instruction: str = "") -> int:
    from rd_vla_ros.demos.demo_bag import write_demo_bag
    from rd_vla_ros.robot import RobotDescription

    try:
        extra: dict = {}
        if robot_file:
            robot = RobotDescription.load(robot_file)
            missing = [arm.name for arm in robot.arms if not arm.controller]
            if missing:
                raise ValueError(f"{robot_file}: arm(s) {missing} name no controller topic (robot.arms[].controller): "
                                 "demo-bag records each arm's commands there")  # fmt: skip
            absolute = {name: "/" + topic.lstrip("/") for name, topic in robot.cameras.items()}
            extra = {"robot": robot, "cameras": absolute,
                     "command_topics": ["/" + arm.controller.lstrip("/") for arm in robot.arms]}  # fmt: skip
        path = write_demo_bag(out, seconds=seconds, storage=storage, instruction=instruction, **extra)
    except ValueError as err:  # BagError, RobotDescriptionError
        sys.stderr.write(f"rd-vla demo-bag: {err}\n")
        return 1
    sys.stdout.write(f"wrote a {seconds:g} s {storage} recording to {path}\n")
    return 0


def replay(args: argparse.Namespace, argv: list[str]) -> int:
    from rd_vla_ros.ros.replay import ReplayError

    try:
        summary, out = run_replay(args, argv)
    except (ReplayError, ValueError, OSError, CheckpointError) as err:  # BagError is a ValueError
        sys.stderr.write(f"rd-vla replay: {err}\n")
        return 1
    sys.stdout.write(format_summary(summary) + f"\nreport: {out / 'report.md'} (and report.json, PNG plots)\n")
    return 0


def run_replay(args: argparse.Namespace, argv: list[str]) -> tuple[dict, Path]:
    """The replay command's work: returns the report summary and the report directory."""
    import torch

    from rd_vla_ros.evaluation.report import write_report
    from rd_vla_ros.model.checkpoint import check_fit, load_policy
    from rd_vla_ros.paths import config_path, resolve_checkpoint
    from rd_vla_ros.robot import RobotDescription
    from rd_vla_ros.ros import params as P
    from rd_vla_ros.ros.bags import BagSource, TopicMap
    from rd_vla_ros.ros.replay import OfflineReplay, load_live_chunks, sweep_settings
    from rd_vla_ros.runtime.runner import PolicyRunner

    bag_path = args.bag.resolve()
    out = (args.out or Path(f"replay_{bag_path.stem}")).resolve()
    if out == bag_path or bag_path in out.parents:
        raise ValueError(f"the report directory {out} is inside the input bag; choose another --out")
    values = P.values_from_file(args.params or config_path("rd_vla_node.yaml"))
    topic_map = TopicMap.from_yaml(args.topic_map or config_path("topic_map_aloha.yaml"))
    if args.instruction:
        topic_map.instruction_default = args.instruction
    robot = RobotDescription.load(args.robot or values["robot_description"])
    with BagSource(bag_path) as bag:  # a wrong bag, robot or checkpoint is reported before the checkpoint loads
        checkpoint = resolve_checkpoint(args.checkpoint or values["checkpoint"])
        config, _ = read_config(checkpoint)
        # the cameras a deployed node is configured with (--params), else the checkpoint's own
        cameras = list(values["camera_names"]) if args.params else list(config.camera_names)
        where = f"--params {args.params}" if args.params else "checkpoint"
        check_fit(config, robot.joint_names, cameras, robot=f"robot '{robot.name}'", cameras_from=where)
        bag.require(topic_map.required_topics(cameras), topic_map.optional_topics())
    torch.set_num_threads(P.torch_threads(args.threads))
    policy = load_policy(checkpoint, torch.device(args.device))
    for name in ("warm_start", "warm_start_shift"):
        if getattr(args, name) is not None:
            values[f"halting.{name}"] = getattr(args, name)
    runner = PolicyRunner(policy, robot.joint_names, cameras, P.inference_settings(values))
    sweep = sweep_settings(runner.settings, _floats(args.thresholds), _ints(args.fixed_depths), args.halting)
    live = load_live_chunks(str(args.live), args.live_topic) if args.live else None
    replan, stride = ("horizon", 1) if args.stride == "horizon" else ("stride", args.stride)
    engine = OfflineReplay(runner, robot, topic_map, P.assembly_limits(values), sweep, stride,
                           values["safety.velocity_scale"], values["safety.velocity_reference"], replan,
                           args.blending or [values["blending.mode"]], values["blending.decay"])  # fmt: skip
    with BagSource(bag_path) as bag:
        result = engine.run(
            bag, progress=not args.quiet, start_s=args.start, duration_s=args.duration, live_chunks=live
        )
    context = {"checkpoint": str(checkpoint), "command": "rd-vla " + shlex.join(argv), "topic_map": vars(topic_map)}
    summary = write_report(result, out, args.tolerance, context, with_plots=not args.no_plots)
    return summary, out


def train_command(args: argparse.Namespace) -> int:
    import os
    from dataclasses import fields

    import torch

    from rd_vla_ros.ros.bags import BagError
    from rd_vla_ros.ros.replay import ReplayError
    from rd_vla_ros.train.trainer import TrainConfig, train

    world = int(os.environ.get("WORLD_SIZE", "1"))
    torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 1) // world))
    try:
        # every TrainConfig field has an option of the same name (test: test_train_options_cover_the_config)
        if args.no_cameras and args.cameras:
            raise ValueError("--cameras and --no-cameras contradict each other: give one")
        if args.no_cameras:
            args.cameras = []
        given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.name not in ("bags", "crops")}
        cfg = TrainConfig(bags=[str(b) for b in args.bags], crops=parse_crops(args.crop), **given)
        summary = train(cfg, resume=args.resume, show_progress=not args.quiet)
    except (BagError, ReplayError, ValueError, OSError, CheckpointError) as err:
        sys.stderr.write(f"rd-vla train: {err}\n")
        return 1
    if int(os.environ.get("RANK", "0")) == 0:
        sys.stdout.write(
            f"trained {summary['steps']} steps (from {summary['resumed_from']}) on {summary['episodes']} episodes "
            f"({summary['samples']} samples, tasks {summary['tasks']}), last l1 {summary['last_l1']:.4f}; "
            f"checkpoint in {args.out}/checkpoint\n"
        )
    return 0


def parse_crops(items: list[str]) -> dict[str, list[float]]:
    """['top=0.1,0.2,0.9,0.8', ...] -> {'top': [0.1, 0.2, 0.9, 0.8]}; ValueError names a malformed item."""
    crops: dict[str, list[float]] = {}
    for item in items:
        name, eq, values = item.partition("=")
        try:
            crops[name.strip()] = [float(v) for v in values.split(",")]
        except ValueError:
            raise ValueError(f"--crop {item!r}: expected CAMERA=LEFT,TOP,RIGHT,BOTTOM (fractions)") from None
        if not eq or not name.strip():
            raise ValueError(f"--crop {item!r}: expected CAMERA=LEFT,TOP,RIGHT,BOTTOM (fractions)")
    return crops


def sim_demos(args: argparse.Namespace) -> int:
    """Record scripted demonstrations until `--episodes` succeeded per task (existing bags are kept)."""
    import shutil

    from rd_vla_ros.sim.aloha import parse_resolution
    from rd_vla_ros.sim.scripted import Disturbance, record_demo

    try:
        disturbance = Disturbance(args.disturbance) if args.disturbance > 0 else None
        resolution = parse_resolution(args.resolution)
    except ValueError as err:
        sys.stderr.write(f"rd-vla sim-demos: {err}\n")
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for task in args.tasks:
        kept, seed = 0, args.seed
        while kept < args.episodes:
            path = args.out / f"{task}_{seed:04d}"
            if (path / "episode.json").is_file():
                kept += 1
            else:
                if path.exists():  # an interrupted recording
                    shutil.rmtree(path)
                # physics alone first (deterministic, ~10x cheaper than rendering): only successes are recorded
                if kept_demo(record_demo(task, seed, None, disturbance=disturbance)):
                    record_demo(task, seed, path, tuple(args.cameras), resolution, args.storage, disturbance)
                    kept += 1
                else:
                    sys.stdout.write(f"{task} seed {seed}: the scripted demonstration failed, skipped\n")
            seed += 1
        sys.stdout.write(f"{task}: {kept} demonstrations in {args.out}\n")
    return 0


def kept_demo(demo: Demonstration) -> bool:
    """A demonstration worth learning from: gym-aloha's success, and for TransferCube also the cube
    still held at the end (its "reached 4" can be met by a brush of the cube)."""
    return demo.success["reached"] and (demo.task != "transfer_cube" or demo.success["final"])


def sim_eval(args: argparse.Namespace, argv: list[str]) -> int:
    import json
    from dataclasses import replace

    import torch

    from rd_vla_ros.model.checkpoint import check_fit, load_policy
    from rd_vla_ros.paths import config_path, resolve_checkpoint
    from rd_vla_ros.robot import RobotDescription
    from rd_vla_ros.runtime.runner import PolicyRunner
    from rd_vla_ros.sim.evaluate import evaluate, plot_results, sweep_for

    if args.merge:
        return merge_sim_eval(args, argv)
    if args.ros and (args.horizon or args.warm_start is not None or args.warm_start_shift is not None):
        sys.stderr.write(
            "rd-vla sim-eval: --ros runs the node's deployed settings; --horizon and --warm-start are in-process only\n"
        )
        return 2
    torch.set_num_threads(args.threads)
    try:
        checkpoint = resolve_checkpoint(args.checkpoint)
        policy = load_policy(checkpoint)
    except (OSError, CheckpointError) as err:
        sys.stderr.write(f"rd-vla sim-eval: {err}\n")
        return 1
    robot = RobotDescription.from_yaml(config_path("aloha_bimanual.yaml"))
    try:
        check_fit(policy.config, robot.joint_names, robot=f"the simulated robot '{robot.name}'")
        if not policy.config.camera_names:
            raise CheckpointError("the ALOHA simulation evaluates camera policies; this checkpoint is state-only")
    except CheckpointError as err:
        sys.stderr.write(f"rd-vla sim-eval: {err}\n")
        return 1
    runner = PolicyRunner(policy, robot.joint_names, list(policy.config.camera_names))
    try:
        base = with_horizon(runner.settings, args.horizon, policy.config.head.chunk_length)
    except ValueError as err:
        sys.stderr.write(f"rd-vla sim-eval: --horizon: {err}\n")
        return 2
    if args.warm_start is not None:
        base = replace(base, warm_start=args.warm_start)
    if args.warm_start_shift is not None:
        base = replace(base, warm_start_shift=args.warm_start_shift)
    warm = ("warm shifted" if base.warm_start_shift else "warm") if base.warm_start else None
    suffix = "".join(f" [{x}]" for x in (args.horizon, None if args.blending == "none" else args.blending, warm) if x)
    sweep = sweep_for(base, _ints(args.depths), _floats(args.thresholds), suffix)
    seeds = list(range(args.seed, args.seed + args.episodes))

    def progress(task: str, name: str, s: dict) -> None:
        sys.stdout.write(
            f"{task:14s} {name:18s} success reached {s['success_reached']:.2f} final {s['success_final']:.2f} "
            f"mean k* {s['mean_iterations']:.2f} H_exec {s['mean_execution_horizon']:.2f} ({s['wall_s']:.0f} s)\n"
        )
        sys.stdout.flush()

    if args.ros:
        results = ros_eval(str(checkpoint), args.tasks, seeds, args.real_time_factor, progress)
    else:
        results = evaluate(runner, robot, args.tasks, seeds, sweep, progress, args.blending)
    from rd_vla_ros.evaluation.report import machine

    payload = {"command": "rd-vla " + shlex.join(argv), "checkpoint": str(checkpoint), "machine": machine(),
               "horizon": {"schedule": base.horizon, **base.horizon_params}, "seeds": seeds,
               "blending": args.blending, "warm_start": base.warm_start, "warm_start_shift": base.warm_start_shift,
               "episodes_per_setting": len(seeds), "episode_steps": 400,
               "results": results}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    if args.plots:
        args.plots.mkdir(parents=True, exist_ok=True)
        plot_results(results, args.plots)
    sys.stdout.write(f"results: {args.out}\n")
    return 0


def with_horizon(settings: InferenceSettings, spec: str | None, chunk_length: int) -> InferenceSettings:
    """settings with the execution-horizon schedule SPEC ('fixed:h=8', 'linear:h_min=4', 'binary')."""
    from dataclasses import replace

    from rd_vla_ros.model.horizon import make_schedule

    if not spec:
        return settings
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
    make_schedule(name, chunk_length=chunk_length, **params)  # ValueError names a bad name or value
    return replace(settings, horizon=name, horizon_params=params)


def ros_eval(checkpoint: str, tasks: list[str], seeds: list[int], rtf: float, progress) -> dict:
    """The deployed setting (config/rd_vla_node.yaml) through the node and the sim bridge over DDS."""
    import tempfile
    import time
    from collections import Counter

    import numpy as np

    from rd_vla_ros.demos.closed_loop import run as run_closed_loop
    from rd_vla_ros.sim.evaluate import wilson

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
        horizons = Counter()
        for e in episodes:
            horizons.update({int(h): count for h, count in e["horizons"].items()})  # H_exec -> chunks
        mean_horizon = sum(h * count for h, count in horizons.items()) / max(1, sum(horizons.values()))
        results[task] = {"deployed (ROS node + bridge)": {
            "episodes": n, "success_reached": reached / n, "success_reached_ci95": wilson(reached, n),
            "success_final": final / n, "success_final_ci95": wilson(final, n),
            "mean_iterations": float(np.mean(its)), "mean_execution_horizon": mean_horizon, "fixed_depth": 0,
            "seeds": seeds, "wall_s": time.perf_counter() - start, "per_episode": episodes,
        }}  # fmt: skip
        progress(task, "deployed (ROS)", results[task]["deployed (ROS node + bridge)"])
    return results


def merge_sim_eval(args: argparse.Namespace, argv: list[str]) -> int:
    import json

    from rd_vla_ros.sim.evaluate import plot_results

    merged: dict | None = None
    for path in args.merge:
        part = json.loads(path.read_text())
        if merged is None:
            merged = {**part, "commands": [part["command"]], "results": {}}
        else:
            merged["commands"].append(part["command"])
        for task, settings in part["results"].items():
            merged["results"].setdefault(task, {}).update(settings)
    assert merged is not None
    merged["command"] = "rd-vla " + shlex.join(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(merged, indent=2) + "\n")
    if args.plots:
        args.plots.mkdir(parents=True, exist_ok=True)
        plot_results({t: {n: s for n, s in v.items() if "ROS" not in n} for t, v in merged["results"].items()},
                     args.plots)  # fmt: skip
    from rd_vla_ros.sim.evaluate import markdown_table

    table = markdown_table(merged["results"])
    args.out.with_suffix(".md").write_text(table + "\n")
    sys.stdout.write(table + f"\nmerged {len(args.merge)} result files into {args.out} (table: .md beside it)\n")
    return 0


def export_command(args: argparse.Namespace) -> int:
    from rd_vla_ros.export.onnx import export
    from rd_vla_ros.model.checkpoint import check_fit, load_policy
    from rd_vla_ros.paths import resolve_checkpoint
    from rd_vla_ros.robot import RobotDescription

    try:
        checkpoint = resolve_checkpoint(args.checkpoint)
        if args.robot:
            robot = RobotDescription.load(args.robot)
            check_fit(read_config(checkpoint)[0], robot.joint_names, robot=f"robot '{robot.name}'")
        policy = load_policy(checkpoint)
        manifest = export(policy, args.out)
    except (OSError, ValueError) as err:  # CheckpointError, RobotDescriptionError are ValueErrors
        sys.stderr.write(f"rd-vla export: {err}\n")
        return 1
    files = ", ".join(g["file"] for g in manifest["graphs"].values())
    sys.stdout.write(f"exported {files} and manifest.json to {args.out}\n")
    return 0


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


if __name__ == "__main__":
    sys.exit(main())
