"""`rd-vla train`: RD-VLA from recorded bags with the randomized-depth TBPTT step, on `accelerate`.

    rd-vla train BAG [BAG ...] --out DIR [--steps 20000] [--batch-size 32] [--resume]
    accelerate launch --cpu --num_processes 2 -m rd_vla_ros.cli train ...   # data parallel (gloo)
    torchrun --nproc_per_node 2 -m rd_vla_ros.cli train ...                  # the same with torchrun

Bags are decoded once through the replay tool's topic map into a safetensors cache; normalisation
statistics come from the data; each step draws its batch and its recurrence depth from
(seed, step, rank) (depth: log-normal Poisson, gradients through the last d iterations), so a
resumed run continues exactly where it stopped. DIR/checkpoint holds the policy (safetensors +
config.json) and the optimizer state (safetensors + JSON); DIR/tb the TensorBoard logs.
"""

from __future__ import annotations

import gc
import json
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from rd_vla_ros.model.checkpoint import check_fit, load_policy, save_policy
from rd_vla_ros.model.config import RDVLAConfig, make_config
from rd_vla_ros.model.depth import DepthSamplerConfig
from rd_vla_ros.model.policy import RDVLAPolicy
from rd_vla_ros.model.training import OptimizerConfig, make_optimizer
from rd_vla_ros.robot import RobotDescription, policy_cameras
from rd_vla_ros.train.config import TrainConfig
from rd_vla_ros.train.dataset import EpisodeDataset
from rd_vla_ros.train.state import load_optimizer, save_optimizer


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to min_lr_ratio * lr."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


@dataclass
class RunInputs:
    """What a run reads besides its bags: the node's parameters, the topic map, the robot, the cameras."""

    values: dict[str, Any]
    topic_map: Any  # rd_vla_ros.ros.bags.TopicMap (imported lazily: training imports no ROS at load time)
    robot: RobotDescription
    cameras: list[str]


def run_inputs(cfg: TrainConfig) -> RunInputs:
    """The robot (--robot, else the params file's robot_description) and the cameras (--cameras, else the
    robot file's, the params file's or the topic map's); ValueError (one line) for any mistake."""
    from rd_vla_ros.paths import config_path
    from rd_vla_ros.ros import params as P
    from rd_vla_ros.ros.bags import TopicMap

    params = cfg.params or config_path("rd_vla_node.yaml")
    values = P.values_from_file(params)
    topic_map = TopicMap.from_yaml(cfg.topic_map or config_path("topic_map_aloha.yaml"))
    topic_map.adopt_node_joint_naming(*P.joint_naming(values), f"the params file {params}")
    robot = RobotDescription.load(cfg.robot or values["robot_description"])
    params_cameras = list(values["camera_names"]) if cfg.params else None
    cameras = policy_cameras(cfg.cameras, cfg.cameras == [], robot, ("the --params file", params_cameras),
                             ("the topic map", list(topic_map.cameras)))  # fmt: skip
    return RunInputs(values, topic_map, robot, cameras)


def load_dataset(
    cfg: TrainConfig, model: RDVLAConfig, show_progress: bool, inputs: RunInputs | None = None
) -> EpisodeDataset:
    """The run's bags as training samples, prepared for `model` (its cameras, crops, image size, chunk)."""
    from rd_vla_ros.ros import params as P
    from rd_vla_ros.ros.episodes import decode_bag, load_episode

    inputs = inputs or run_inputs(cfg)
    values, topic_map, robot = inputs.values, inputs.topic_map, inputs.robot
    limits = P.assembly_limits(values)
    cache = Path(cfg.cache_dir or Path(cfg.out) / "cache")
    cameras, size, chunk, period = (
        model.camera_names,
        model.backbone.image_size,
        model.head.chunk_length,
        model.control_period_s,
    )
    settings = {"topic_map": vars(topic_map), "cameras": cameras, "image_size": size, "chunk_length": chunk,
                "period_s": period, "limits": vars(limits), "joints": robot.joint_names}  # fmt: skip
    if model.camera_crops:  # (absent when empty: caches decoded before crops existed stay valid)
        settings["crops"] = model.camera_crops
    episodes = []
    for bag in tqdm(cfg.bags, desc="decoding bags", disable=not show_progress, unit="bag"):
        path = Path(bag)
        episodes.append(load_episode(path, cache, settings, lambda p=path: decode_bag(
            p, topic_map, robot, cameras, size, chunk, period, limits, model.camera_crops)))  # fmt: skip
    return EpisodeDataset(episodes, shift=cfg.shift, proprio_noise=cfg.proprio_noise)


def new_policy(cfg: TrainConfig, joint_names: list[str] | None = None, cameras: list[str] | None = None) -> RDVLAPolicy:
    """A freshly initialised policy for the run (normalisers are fitted to the data afterwards): for
    `joint_names` and `cameras` (None: ALOHA's and cfg.cameras)."""
    overrides: dict[str, Any] = {}
    if cfg.train_backbone is not None:
        overrides["freeze"] = not cfg.train_backbone
    elif cfg.preset in ("tiny", "conv"):
        overrides["freeze"] = False  # random init: nothing to keep frozen
    if cfg.patch_size is not None:
        overrides["patch_size"] = cfg.patch_size
    cameras = cfg.cameras if cameras is None else cameras
    config = make_config(cfg.preset, joint_names, cameras, camera_crops=cfg.crops, **overrides)
    if cfg.depth_mean is not None:
        config.depth = DepthSamplerConfig(mean=cfg.depth_mean)
        config.head.mean_recurrence = cfg.depth_mean
    torch.manual_seed(cfg.seed)
    return RDVLAPolicy(config)


def param_checksum(model: torch.nn.Module) -> float:
    """A number that differs when any parameter differs (for the data-parallel sync check)."""
    total = torch.zeros((), dtype=torch.float64)
    for i, p in enumerate(model.parameters()):
        total += (p.detach().double().flatten() * (1.0 + 1e-3 * i)).sum()
    return float(total)


def train(cfg: TrainConfig, resume: bool = False, show_progress: bool = True) -> dict[str, Any]:
    """Run (or resume) training; returns the summary written to DIR/train_summary.json."""
    from accelerate import Accelerator, DistributedDataParallelKwargs

    accelerator = Accelerator(
        cpu=not torch.cuda.is_available(), kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)]
    )
    main = accelerator.is_main_process
    rank = accelerator.process_index
    out = Path(cfg.out)
    ckpt = out / "checkpoint"
    resuming = resume and (ckpt / "config.json").is_file()
    if resume and not resuming and main:
        tqdm.write(f"train: nothing to resume in {ckpt}, starting fresh")
    inputs = run_inputs(cfg)
    if resuming:
        policy = load_policy(ckpt)
        check_fit(policy.config, inputs.robot.joint_names, inputs.cameras, robot=f"robot '{inputs.robot.name}'",
                  cameras_from="this run's")  # fmt: skip
    else:
        policy = new_policy(cfg, inputs.robot.joint_names, inputs.cameras)
    c = policy.config
    # rank 0 decodes (and caches) the bags first; the others then read the cache
    with accelerator.main_process_first():
        dataset = load_dataset(cfg, c, show_progress and main, inputs)
    if not resuming:
        policy.proprio_normalizer.fit(dataset.proprio)
        policy.action_normalizer.fit(dataset.valid_actions())
    policy.train()
    optimizer = make_optimizer(
        policy, OptimizerConfig(lr=cfg.lr, weight_decay=cfg.weight_decay, grad_clip=cfg.grad_clip)
    )
    start = 0
    if resuming:
        start = int(load_optimizer(optimizer, ckpt)["step"])
    model, optimizer = accelerator.prepare(policy, optimizer)
    writer = None
    if main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tb"))
    trainable = [p for p in model.parameters() if p.requires_grad]
    bar = tqdm(total=cfg.steps, initial=start, desc="train", disable=not (show_progress and main), dynamic_ncols=True)
    window: list[float] = []
    first_index_sum = None
    tic = time.perf_counter()
    info: dict[str, Any] = {}
    for step in range(start, cfg.steps):
        batch = dataset.batch(cfg.batch_size, cfg.seed, step, rank, cfg.proprio_dropout)
        if first_index_sum is None:
            first_index_sum = int(batch["index"].sum())
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(cfg, step)
        loss, info = model(batch, step=step, rank=rank)
        accelerator.backward(loss)
        grad_norm = float(accelerator.clip_grad_norm_(trainable, cfg.grad_clip))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        window.append(float(loss.detach()))
        bar.update(1)
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            mean_loss = float(accelerator.reduce(torch.tensor(np.mean(window)), reduction="mean"))
            rate = len(window) / (time.perf_counter() - tic)
            if writer is not None:
                writer.add_scalar("train/l1", mean_loss, step + 1)
                writer.add_scalar("train/depth", info["depth"], step + 1)
                writer.add_scalar("train/grad_norm", grad_norm, step + 1)
                writer.add_scalar("train/lr", learning_rate(cfg, step), step + 1)
                writer.add_scalar("train/steps_per_s", rate, step + 1)
            bar.set_postfix(l1=f"{mean_loss:.4f}", depth=info["depth"], steps_s=f"{rate:.1f}")
            window, tic = [], time.perf_counter()
        if (step + 1) % cfg.save_every == 0 or step + 1 == cfg.steps:
            accelerator.wait_for_everyone()
            if main:
                _save(accelerator.unwrap_model(model), optimizer, ckpt, cfg, step + 1, dataset, inputs.robot.name)
    bar.close()
    checksums = accelerator.gather(torch.tensor([param_checksum(accelerator.unwrap_model(model))], dtype=torch.float64))
    firsts = accelerator.gather(torch.tensor([first_index_sum if first_index_sum is not None else -1]))
    summary = {
        "steps": cfg.steps,
        "resumed_from": start,
        "world_size": accelerator.num_processes,
        "rank_param_checksums": checksums.tolist(),
        "rank_first_batch_index_sums": firsts.tolist(),
        "last_l1": info.get("l1"),
        "episodes": len(dataset.episodes),
        "samples": len(dataset),
        "tasks": dataset.tasks,
    }
    if main:
        (out / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        if writer is not None:
            writer.close()
    accelerator.end_training()
    # Release the DDP wrapper (its reducer) while the process group is still alive and every rank is
    # still here: a rank that freed it only when train() returned hung now and then in that destructor
    # (faulthandler: blocked at the call site of train(), after the process group was gone).
    accelerator.free_memory()
    del model, optimizer
    gc.collect()
    _leave_process_group()
    return summary


def _leave_process_group() -> None:
    """Meet every rank, then tear the process group down while the interpreter is fully alive.

    Exiting with a live gloo group leaves its worker threads holding tensors during interpreter
    finalisation, which now and then hangs a rank forever (seen in CI, pytorch/pytorch#75097).
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _save(
    policy: RDVLAPolicy, optimizer: Any, ckpt: Path, cfg: TrainConfig, step: int, data: EpisodeDataset, robot: str
) -> None:
    """Write the checkpoint next to the old one, then swap, so an interrupted save loses nothing."""
    tmp = ckpt.with_name(ckpt.name + ".new")
    if tmp.exists():
        shutil.rmtree(tmp)
    extra = {"trained": True, "step": step, "train_config": asdict(cfg), "episodes": len(data.episodes),
             "tasks": data.tasks, "robot": robot}  # fmt: skip
    save_policy(policy, tmp, extra=extra)
    inner = getattr(optimizer, "optimizer", optimizer)  # accelerate's wrapper
    save_optimizer(inner, tmp, {"step": step})
    old = ckpt.with_name(ckpt.name + ".old")
    if ckpt.exists():
        ckpt.rename(old)
    tmp.rename(ckpt)
    if old.exists():
        shutil.rmtree(old)
