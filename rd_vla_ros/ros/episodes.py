"""Recorded bags -> training episodes (plain arrays), decoded once and cached as safetensors.

A bag is read by ros.bag_feed.BagFeed, the path offline replay uses too: at every control tick the
observation is assembled exactly as the node would (InputFeed -> ObservationAssembler,
age limits, joint mapping by name, images resized with the runner's resize), and its action target
is the recorded command at stamp + (i + 1) * period for the H rows of a chunk (CommandTimeline,
joint_trajectory_controller semantics), padded where the recording has no command. Simulated and
real recordings go through the same path.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from rd_vla_ros.robot import RobotDescription
from rd_vla_ros.ros.bag_feed import BagFeed, ReplayError
from rd_vla_ros.ros.bags import BagSource, TopicMap
from rd_vla_ros.runtime.camera_input import prepare_image
from rd_vla_ros.runtime.observation import AssemblyLimits
from rd_vla_ros.train.episode import Episode

CACHE_VERSION = 1
LOG = logging.getLogger(__name__)


def decode_bag(
    path: str | Path,
    topic_map: TopicMap,
    robot: RobotDescription,
    camera_names: list[str],
    image_size: int,
    chunk_length: int,
    period_s: float,
    limits: AssemblyLimits | None = None,
    crops: dict[str, list[float]] | None = None,
) -> Episode:
    """Stream one bag into an Episode (raises BagError / ReplayError with a clear message). Images are
    prepared as the runner prepares them: `crops` (camera -> fractions), then a square resize."""
    crops = crops or {}
    limits = limits or AssemblyLimits()
    period_ns = round(period_s * 1e9)
    images, proprio, stamps, instructions = [], [], [], []
    with BagSource(path) as bag:
        feed = BagFeed(bag, topic_map, robot, list(camera_names), limits)
        last = -1
        for _, obs, _ in feed.ticks(bag.start_ns, period_ns):
            if obs is not None and obs.stamp_ns != last:
                last = obs.stamp_ns
                frames = [prepare_image(obs.images[c], image_size, crops.get(c)) for c in camera_names]
                images.append(np.stack(frames) if frames else np.zeros((0, image_size, image_size, 3), np.uint8))
                proprio.append(obs.joint_positions.astype(np.float32))
                stamps.append(obs.stamp_ns)
                instructions.append(obs.instruction)
        timeline = feed.timeline
    if feed.rejected:
        LOG.warning("%s: rejected messages (not used for training): %s", path, dict(feed.rejected))
    if not stamps:
        raise ReplayError(f"no observation could be assembled from '{path}'")
    if not timeline.commanded_joints():
        raise ReplayError(f"'{path}' has no usable commands on {topic_map.command_topics}")
    never = [j for j in robot.joint_names if j not in timeline.commanded_joints()]
    if never:  # every row would be padding: say which joint, not "no recorded command"
        foreign = sorted(timeline.foreign_joints)
        raise ReplayError(
            f"'{path}': joint(s) {never} of robot '{robot.name}' are never commanded on {topic_map.command_topics}"
            + (f" (the commands name {foreign}, not in the robot: rename them in the topic map)" if foreign else "")
        )
    if len(set(instructions)) > 1:
        raise ReplayError(f"'{path}' changes its instruction mid-episode ({sorted(set(instructions))})")
    stamps_arr = np.asarray(stamps, dtype=np.int64)  # (N,)
    times = stamps_arr[:, None] + np.arange(1, chunk_length + 1, dtype=np.int64)[None, :] * period_ns  # (N, H)
    targets, valid = timeline.targets(times)  # (N, H, J)
    pad = ~valid.all(-1)  # (N, H) a row counts only when every joint has a command
    return Episode(
        images=np.stack(images),
        proprio=np.stack(proprio),
        actions=np.nan_to_num(targets).astype(np.float32),
        action_is_pad=pad,
        stamps_ns=stamps_arr,
        instruction=instructions[0],
        source=str(path),
    )


def cache_key(path: Path, settings: dict) -> str:
    """Changes when the bag's files or the decoding settings change."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    h = hashlib.sha256(json.dumps({**settings, "version": CACHE_VERSION}, sort_keys=True).encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def load_episode(path: Path, cache_dir: Path, settings: dict, decode: Callable[[], Episode]) -> Episode:
    """The cached Episode of a bag, decoding (and caching) it on first use."""
    key = cache_key(path, settings)
    file = cache_dir / f"{path.name}-{key}.safetensors"
    if file.is_file():
        arrays = load_file(file)
        meta = json.loads((file.with_suffix(".json")).read_text())
        return Episode(
            images=arrays["images"], proprio=arrays["proprio"], actions=arrays["actions"],
            action_is_pad=arrays["action_is_pad"].astype(bool), stamps_ns=arrays["stamps_ns"],
            instruction=meta["instruction"], source=meta["source"],
        )  # fmt: skip
    episode = decode()
    cache_dir.mkdir(parents=True, exist_ok=True)
    save_file(
        {"images": episode.images, "proprio": episode.proprio, "actions": episode.actions,
         "action_is_pad": episode.action_is_pad.astype(np.uint8), "stamps_ns": episode.stamps_ns},
        str(file),
    )  # fmt: skip
    file.with_suffix(".json").write_text(json.dumps({"instruction": episode.instruction, "source": episode.source}))
    return episode
