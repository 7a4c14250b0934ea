"""Does a checkpoint use its cameras? A diagnostic for closed-loop failures (docs/sim.md).

    .venv/bin/python benchmarks/vision_probe.py build/sim/demos/transfer_cube_00{00..11} \
        --checkpoint embedded --cache-dir build/train/embedded/cache

Episodes of one task differ by where the object starts, so the recorded commands of two episodes at
the same tick differ by how far apart the objects were. For pairs of episodes (a, b) and a few ticks t,
the script measures:
  - how much the images differ (share of pixels), and how much the backbone's projected vision tokens
    and last-layer latent tokens (what the head cross-attends to) differ between a and b at tick 0,
    where the robot is in the same pose and only the object moved;
  - |recorded_a(t) - recorded_b(t)|: how much the right chunk depends on the scene;
  - |pred(images_a, proprio_a) - pred(images_b, proprio_a)|: how much the predicted chunk changes when
    only the images are swapped (fixed depth 12, same scratchpad seed);
  - the prediction's own error |pred(images_a, proprio_a) - recorded_a|.
A policy that uses its cameras moves its chunk by a sizeable share of the recorded difference when the
images are swapped; one that ignores them predicts from the joint positions alone.
The last line is key=value pairs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, print_table

from rd_vla_ros.model.checkpoint import load_policy
from rd_vla_ros.model.config import InferenceSettings
from rd_vla_ros.paths import resolve_checkpoint
from rd_vla_ros.train.trainer import TrainConfig, load_dataset


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bags", nargs="+", help="demonstration bags of one task (an even number: pairs)")
    parser.add_argument("--checkpoint", default="embedded")
    parser.add_argument("--cache-dir", default=None, help="decoded-episode cache (as rd-vla train --cache-dir)")
    parser.add_argument("--ticks", default="10,25,40,60,80")
    args = parser.parse_args()
    torch.set_num_threads(1)
    policy = load_policy(resolve_checkpoint(args.checkpoint))
    c = policy.config
    cfg = TrainConfig(bags=args.bags, out="build/vision_probe", cache_dir=args.cache_dir, shift=0)
    data = load_dataset(cfg, c, False)
    episodes = data.episodes
    pairs = [(episodes[i], episodes[i + 1]) for i in range(0, len(episodes) - 1, 2)]
    settings = InferenceSettings(fixed_depth=12)

    def batch(images: np.ndarray, proprio: np.ndarray, instruction: str) -> dict:
        return {"images": torch.from_numpy(images[None]).permute(0, 1, 4, 2, 3).float() / 255.0,  # (1, C, 3, S, S)
                "proprio": torch.from_numpy(proprio[None]).float(), "instruction": [instruction]}  # fmt: skip

    def predict(images: np.ndarray, proprio: np.ndarray, instruction: str) -> np.ndarray:
        encoded = policy.encode(batch(images, proprio, instruction))
        return policy.run_head(encoded, settings, torch.Generator().manual_seed(0)).actions[0].numpy()  # (K, A)

    pixels, vision, latent = [], [], []
    rows = []
    with torch.no_grad():
        for a, b in pairs:
            pixels.append(float((np.abs(a.images[0].astype(int) - b.images[0].astype(int)).sum(-1) > 30).mean()))
            obs_a, obs_b = (
                batch(a.images[0], a.proprio[0], a.instruction),
                batch(b.images[0], a.proprio[0], a.instruction),
            )
            va, vb = policy.backbone.encode_images(obs_a["images"]), policy.backbone.encode_images(obs_b["images"])
            vision.append(float((va - vb).norm() / va.norm()))
            la, lb = policy.encode(obs_a).features.last_latent, policy.encode(obs_b).features.last_latent
            latent.append(float((la - lb).norm() / la.norm()))
        for t in map(int, args.ticks.split(",")):
            recorded, swapped, error = [], [], []
            for a, b in pairs:
                if t >= min(len(a), len(b)):
                    continue
                own = predict(a.images[t], a.proprio[t], a.instruction)
                other = predict(b.images[t], a.proprio[t], a.instruction)
                recorded.append(float(np.abs(a.actions[t] - b.actions[t]).mean()))
                swapped.append(float(np.abs(own - other).mean()))
                error.append(float(np.abs(own - a.actions[t]).mean()))
            if recorded:
                share = np.mean(swapped) / np.mean(recorded)
                rows.append([t, len(recorded), np.mean(recorded), np.mean(swapped), share, np.mean(error)])
    print(f"machine: {machine()}")
    print(f"checkpoint: {args.checkpoint}; {len(pairs)} episode pairs; fixed depth 12")
    print_table(
        "tick 0, same pose, object moved: relative difference between the two episodes",
        ["pixels that differ", "projected vision tokens", "last-layer latent tokens"],
        [[np.mean(pixels), np.mean(vision), np.mean(latent)]],
    )
    print_table(
        "swapping the images (same joint positions): change of the predicted chunk vs of the recorded one",
        ["tick", "pairs", "|recorded a - b| (mean)", "|pred(img a) - pred(img b)|", "share", "own error"],
        rows,
    )
    share = float(np.mean([r[4] for r in rows])) if rows else float("nan")
    print(f"pixel_share={np.mean(pixels):.3g} vision_token_change={np.mean(vision):.3g} "
          f"latent_token_change={np.mean(latent):.3g} image_swap_share={share:.3g}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
