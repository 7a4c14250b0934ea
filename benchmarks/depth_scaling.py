"""How the recurrent head's cost scales with depth r: latency, peak memory, training memory.

    .venv/bin/python benchmarks/depth_scaling.py                 # tiny and paper sizes, CPU
    .venv/bin/python benchmarks/depth_scaling.py --sizes tiny    # quick

For r in 1, 2, 4, 8, 16, 32, 64 and each size: head latency (total and per iteration) and peak memory
at inference (fixed depth r, one observation); training forward+backward peak memory with truncated
BPTT (gradients through the last 8 iterations) and with full BPTT; and one head iteration relative to
one backbone forward. Targets (issue 3): inference peak memory at r=64 within 5% of r=1; at paper sizes
one iteration under 5% of a backbone forward. Memory on CPU is the process's peak resident set during
the measured call (see common.PeakMemory); "growth" is that peak minus the resident set before it.
The last line is key=value pairs for scripts.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PeakMemory, machine, median_ms, print_table, time_call

from rd_vla_ros.model.config import InferenceSettings, make_config
from rd_vla_ros.model.policy import RDVLAPolicy

DEPTHS = [1, 2, 4, 8, 16, 32, 64]


def observation(policy: RDVLAPolicy, batch: int, device: torch.device) -> dict:
    cfg = policy.config.backbone
    g = torch.Generator().manual_seed(0)
    return {
        "images": torch.rand(batch, cfg.num_cameras, 3, cfg.image_size, cfg.image_size, generator=g).to(device),
        "proprio": torch.randn(batch, policy.config.head.proprio_dim, generator=g).to(device),
        "instruction": ["pick up the cube and hand it to the other arm"] * batch,
    }


def run_size(size: str, depths: list[int], repeats: int, train_batch: int, device: torch.device) -> dict:
    torch.manual_seed(0)
    policy = RDVLAPolicy(make_config(size)).to(device).eval()
    obs = observation(policy, 1, device)
    with torch.no_grad():
        backbone_ms = median_ms(time_call(lambda: policy.encode(obs), repeats, device))
        encoded = policy.encode(obs)
    inference: dict[int, dict[str, float]] = {}
    for r in depths:
        settings = InferenceSettings(fixed_depth=r, horizon="fixed")
        ms = median_ms(time_call(lambda s=settings: policy.run_head(encoded, s), repeats, device))
        with PeakMemory(device) as mem:
            policy.run_head(encoded, settings)
        inference[r] = {"ms": ms, "peak": mem.peak_mb, "growth": mem.growth_mb}
    base = inference[depths[0]]["ms"]
    for r in depths:
        inference[r]["per_iter"] = inference[r]["ms"] / r if r == depths[0] else (inference[r]["ms"] - base) / (r - 1)

    # training: the head on detached features of a batch (the frozen backbone's cost is independent of r)
    batch_obs = observation(policy, train_batch, device)
    with torch.no_grad():
        feats = policy.encode(batch_obs)
    policy.head.train()
    training: dict[tuple[str, int], dict[str, float]] = {}
    for mode, grad_iterations in (("tbptt", 8), ("full", None)):
        for r in depths:

            def step(r: int = r, g: int | None = grad_iterations) -> None:
                policy.head.zero_grad(set_to_none=True)
                out = policy.head(feats.features, feats.proprio, num_iterations=r, grad_iterations=g)
                out.abs().mean().backward()

            ms = median_ms(time_call(step, max(1, repeats // 2), device))
            with PeakMemory(device) as mem:
                step()
            training[(mode, r)] = {"ms": ms, "peak": mem.peak_mb, "growth": mem.growth_mb}
    policy.head.eval()
    head_params = sum(p.numel() for p in policy.head.parameters())
    total_params = sum(p.numel() for p in policy.parameters())
    return {
        "backbone_ms": backbone_ms,
        "inference": inference,
        "training": training,
        "head_params": head_params,
        "total_params": total_params,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["tiny", "paper"], choices=["tiny", "paper"])
    parser.add_argument("--depths", nargs="+", type=int, default=DEPTHS)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"machine: {machine()}")
    print(f"command: python benchmarks/depth_scaling.py {' '.join(sys.argv[1:])}".rstrip())
    results = {}
    for size in args.sizes:
        res = results[size] = run_size(size, args.depths, args.repeats, args.train_batch, device)
        print(
            f"\n## {size}: {res['total_params'] / 1e6:.1f} M parameters ({res['head_params'] / 1e6:.2f} M head),"
            f" backbone forward {res['backbone_ms']:.1f} ms (batch 1)"
        )
        print_table(
            f"{size} inference (batch 1, fixed depth r)",
            ["r", "head ms", "ms / iteration", "iteration / backbone", "peak MB", "growth MB"],
            [
                [r, v["ms"], v["per_iter"], f"{100 * v['per_iter'] / res['backbone_ms']:.2f}%", v["peak"], v["growth"]]
                for r, v in res["inference"].items()
            ],
        )
        print_table(
            f"{size} training step of the head (batch {args.train_batch}): truncated BPTT (d=8) vs full BPTT",
            ["r", "TBPTT ms", "TBPTT growth MB", "full ms", "full growth MB"],
            [
                [
                    r,
                    res["training"][("tbptt", r)]["ms"],
                    res["training"][("tbptt", r)]["growth"],
                    res["training"][("full", r)]["ms"],
                    res["training"][("full", r)]["growth"],
                ]
                for r in args.depths
            ],
        )
    lo, hi = args.depths[0], args.depths[-1]
    summary = {}
    for size, res in results.items():
        inf, tr = res["inference"], res["training"]
        summary[f"mem_ratio_r{hi}_r{lo}_{size}"] = inf[hi]["peak"] / inf[lo]["peak"]
        summary[f"inference_growth_r{hi}_mb_{size}"] = inf[hi]["growth"]
        summary[f"tbptt_growth_r{hi}_mb_{size}"] = tr[("tbptt", hi)]["growth"]
        summary[f"full_bptt_growth_r{hi}_mb_{size}"] = tr[("full", hi)]["growth"]
        summary[f"iter_to_backbone_{size}"] = inf[hi]["per_iter"] / res["backbone_ms"]
    main_size = "paper" if "paper" in results else args.sizes[0]
    summary[f"mem_ratio_r{hi}_r{lo}"] = summary[f"mem_ratio_r{hi}_r{lo}_{main_size}"]
    print("\n" + " ".join(f"{k}={v:.4g}" for k, v in summary.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
