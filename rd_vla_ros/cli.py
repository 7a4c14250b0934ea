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
    args = parser.parse_args(argv)
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
