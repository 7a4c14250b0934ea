"""Latent iterative reasoning (RD-VLA) vs token reasoning, with the SAME backbone, side by side.

    .venv/bin/python benchmarks/latent_vs_token.py               # paper sizes (Qwen2.5-0.5B), CPU
    .venv/bin/python benchmarks/latent_vs_token.py --size tiny

RD-VLA: one backbone pass over [vision; instruction; latent tokens] + 12 recurrent head iterations.
Token reasoning (the paper's comparison: reasoning VLAs generate ~250 tokens before acting): the
same LLM prefills the same vision + instruction tokens, then generates 250 tokens greedily with a
KV cache. Reported: wall-clock time of each, the ratio, and each method's memory growth (peak during
the call minus before it; the token path's KV cache grows with every generated token). The paper
claims up to 80x; the ratio depends on how much of the time the shared prefill takes, which is large
on a CPU, so the reasoning-only ratio (12 head iterations vs 250 decoding steps) is shown too.
The last line is key=value pairs for scripts.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PeakMemory, machine, median_ms, print_table, time_call

from rd_vla_ros.model.config import InferenceSettings, make_config
from rd_vla_ros.model.policy import RDVLAPolicy


@torch.no_grad()
def token_reasoning(policy: RDVLAPolicy, obs: dict, new_tokens: int) -> tuple[float, float]:
    """Prefill [vision; instruction] then greedy-decode `new_tokens` tokens with a KV cache.

    Returns (prefill seconds, decode seconds)."""
    bb = policy.backbone
    start = time.perf_counter()
    vision = bb.encode_images(obs["images"])  # (1, V, D)
    ids = bb.encode_instructions(obs["instruction"])[0].to(vision.device)  # (1, T), batch 1: no padding
    inputs = torch.cat([vision, bb.lm.get_input_embeddings()(ids)], dim=1)  # (1, V+T, D)
    out = bb.lm(inputs_embeds=inputs, use_cache=True)
    past, token = out.past_key_values, out.logits[:, -1:].argmax(-1)  # (1, 1)
    prefill = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(new_tokens - 1):
        out = bb.lm(input_ids=token, past_key_values=past, use_cache=True)
        past, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
    return prefill, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="paper", choices=["tiny", "paper"])
    parser.add_argument("--iterations", type=int, default=12, help="RD-VLA head iterations")
    parser.add_argument("--tokens", type=int, default=250, help="reasoning tokens generated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"machine: {machine()}")
    print(f"command: python benchmarks/latent_vs_token.py {' '.join(sys.argv[1:])}".rstrip())
    torch.manual_seed(0)
    policy = RDVLAPolicy(make_config(args.size)).to(device).eval()
    cfg = policy.config.backbone
    obs = {
        "images": torch.rand(1, cfg.num_cameras, 3, cfg.image_size, cfg.image_size, device=device),
        "proprio": torch.zeros(1, policy.config.head.proprio_dim, device=device),
        "instruction": ["pick up the cube with the right arm and hand it to the left arm"],
    }
    settings = InferenceSettings(fixed_depth=args.iterations, horizon="fixed")

    with torch.no_grad():
        latent_times = time_call(lambda: policy.predict_action_chunk(obs, settings), args.repeats, device)
        encoded = policy.encode(obs)
        head_times = time_call(lambda: policy.run_head(encoded, settings), args.repeats, device)
        backbone_times = time_call(lambda: policy.encode(obs), args.repeats, device)
        with PeakMemory(device) as latent_mem:
            policy.predict_action_chunk(obs, settings)
    token_runs = [token_reasoning(policy, obs, args.tokens) for _ in range(max(1, args.repeats - 1))]
    with PeakMemory(device) as token_mem:
        token_reasoning(policy, obs, args.tokens)
    prefill_ms = median_ms([p for p, _ in token_runs])
    decode_ms = median_ms([d for _, d in token_runs])
    token_ms = median_ms([p + d for p, d in token_runs])
    latent_ms = median_ms(latent_times)
    head_ms = median_ms(head_times)
    print_table(
        f"{args.size}: one observation -> one action chunk (batch 1)",
        ["method", "total ms", "backbone / prefill ms", "reasoning ms", "memory growth MB"],
        [
            [f"RD-VLA: backbone + {args.iterations} head iterations", latent_ms, median_ms(backbone_times), head_ms,
             latent_mem.growth_mb],
            [f"token reasoning: prefill + {args.tokens} tokens (KV cache)", token_ms, prefill_ms, decode_ms,
             token_mem.growth_mb],
        ],
    )  # fmt: skip
    speedup = token_ms / latent_ms
    reasoning_speedup = decode_ms / head_ms
    print(
        f"\nspeedup (end to end) {speedup:.1f}x; reasoning only ({args.tokens} decode steps vs"
        f" {args.iterations} head iterations) {reasoning_speedup:.1f}x; paper's claim: up to 80x"
    )
    print(
        f"speedup={speedup:.4g} reasoning_speedup={reasoning_speedup:.4g} latent_ms={latent_ms:.4g} "
        f"token_ms={token_ms:.4g} latent_mem_growth_mb={latent_mem.growth_mb:.4g} "
        f"token_mem_growth_mb={token_mem.growth_mb:.4g}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
