"""`rd-vla`: the package's command line (model utilities; more subcommands come with replay/train/export).

rd-vla init-checkpoint OUT [--preset tiny] [--seed 0]   write a randomly initialised checkpoint
rd-vla info CHECKPOINT                                  print a checkpoint's configuration summary
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from rd_vla_ros.model.checkpoint import CheckpointError, read_config, save_policy
from rd_vla_ros.model.config import make_config
from rd_vla_ros.model.policy import RDVLAPolicy


def init_checkpoint(out: Path, preset: str, seed: int) -> Path:
    """An UNTRAINED policy (random weights, identity normalisation): for tests, demos and benchmarks."""
    torch.manual_seed(seed)
    policy = RDVLAPolicy(make_config(preset))
    return save_policy(policy, out, extra={"trained": False, "seed": seed, "preset": preset})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rd-vla", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init-checkpoint", help="write a randomly initialised (untrained) checkpoint")
    init.add_argument("out", type=Path)
    init.add_argument("--preset", default="tiny", choices=["tiny", "paper"])
    init.add_argument("--seed", type=int, default=0)
    info = sub.add_parser("info", help="summarise a checkpoint")
    info.add_argument("checkpoint", type=Path)
    bag = sub.add_parser("bag-info", help="list a bag's topics and check them against a topic map")
    bag.add_argument("bag", type=Path, help="rosbag2 directory (sqlite3 or mcap) or a .mcap / .db3 file")
    bag.add_argument(
        "--topic-map", type=Path, default=None, help="topic map YAML (default: config/topic_map_aloha.yaml)"
    )
    args = parser.parse_args(argv)
    if args.command == "bag-info":
        return bag_info(args.bag, args.topic_map)
    if args.command == "init-checkpoint":
        path = init_checkpoint(args.out, args.preset, args.seed)
        sys.stdout.write(f"wrote an untrained {args.preset} checkpoint to {path}\n")
        return 0
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


if __name__ == "__main__":
    sys.exit(main())


def bag_info(path: Path, topic_map_path: Path | None) -> int:
    """Print the bag's topics; exit 1 with the reason when it does not fit the topic map."""
    from rd_vla_ros.paths import config_path
    from rd_vla_ros.ros.bags import BagError, BagSource, TopicMap

    try:
        topic_map = TopicMap.from_yaml(topic_map_path or config_path("topic_map_aloha.yaml"))
        with BagSource(path) as source:
            duration = (source.end_ns - source.start_ns) / 1e9 if source.message_count else 0.0
            sys.stdout.write(f"{path}: {source.message_count} messages over {duration:.2f} s\n")
            for info in sorted(source.topics.values(), key=lambda t: t.name):
                sys.stdout.write(f"  {info.name:50s} {info.msgtype:40s} {info.count}\n")
            source.require(topic_map.required_topics())
    except (BagError, ValueError, OSError) as err:
        sys.stderr.write(f"rd-vla bag-info: {err}\n")
        return 1
    sys.stdout.write("the bag has every topic the topic map needs\n")
    return 0
