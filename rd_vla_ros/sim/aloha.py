"""AlohaSim: the bimanual ALOHA in MuJoCo, rendering only the cameras the policy uses, cheaply.

Built on gym-aloha's own scene files, task classes and reward (TransferCube, Insertion), driven
directly instead of through dm_control's Environment, which renders three 640x480 cameras with
shadows and anti-aliasing at every step (~5 steps/s here). With shadows and anti-aliasing off and
160x120 images (the real ALOHA's 4:3 frames, scaled down) a control step costs a few milliseconds
(see docs/sim.md). The policy's own view (a crop, a square resize) is made by PolicyRunner, as for
a real camera.

Actions and joint positions are 14-D in ALOHA order (per arm: 6 joint angles, then the gripper
normalised to [0 closed, 1 open]), at 50 Hz (10 physics substeps of 2 ms).
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco as mj
import numpy as np
from dm_control import mujoco
from gym_aloha.constants import ASSETS_DIR, DT
from gym_aloha.tasks import sim as joint_tasks
from gym_aloha.utils import sample_box_pose, sample_insertion_pose

CONTROL_PERIOD_S = DT  # 0.02 s
CAMERA_RESOLUTION = (160, 120)  # (width, height): the real ALOHA's 640x480 cameras at a quarter
EPISODE_STEPS = 400  # a scripted Insertion succeeds around step 337: gym-aloha's 300 is too short
MAX_REWARD = 4


@dataclass(frozen=True)
class TaskSpec:
    name: str
    instruction: str
    joint_scene: str
    mocap_scene: str
    task_class: type


TASKS = {
    "transfer_cube": TaskSpec("transfer_cube", "transfer the cube", "bimanual_viperx_transfer_cube.xml",
                              "bimanual_viperx_end_effector_transfer_cube.xml", joint_tasks.TransferCubeTask),
    "insertion": TaskSpec("insertion", "insert the peg into the socket", "bimanual_viperx_insertion.xml",
                          "bimanual_viperx_end_effector_insertion.xml", joint_tasks.InsertionTask),
}  # fmt: skip
INSTRUCTION_TASKS = {spec.instruction: name for name, spec in TASKS.items()}


def task_spec(name: str) -> TaskSpec:
    if name not in TASKS:
        raise ValueError(f"unknown task '{name}', expected one of {list(TASKS)}")
    return TASKS[name]


def object_poses(task: str, seed: int) -> np.ndarray:
    """Initial object pose(s) for an episode seed: (7,) cube or (14,) peg + socket, gym-aloha's samplers."""
    if task == "transfer_cube":
        return sample_box_pose(seed)
    return np.concatenate(sample_insertion_pose(seed))


def parse_resolution(text: str) -> tuple[int, int]:
    """'160x120' -> (160, 120); ValueError when it is not WIDTHxHEIGHT with sides in 8..2048."""
    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit() or not all(8 <= int(v) <= 2048 for v in (width, height)):
        raise ValueError(f"expected WIDTHxHEIGHT with sides in 8..2048 px, e.g. 160x120; got '{text}'")
    return int(width), int(height)


def make_cheap(physics: mujoco.Physics) -> None:
    """Shadows and multisample anti-aliasing off: ~15x cheaper software rendering."""
    physics.model.light_castshadow[:] = 0
    physics.model.vis.quality.offsamples = 0


class AlohaSim:
    """One ALOHA task in the joint-position scene.

    Args:
        task: "transfer_cube" or "insertion".
        cameras: camera names of the scene to render ("top", "angle", "left_wrist", "right_wrist", ...).
        resolution: (width, height) of every camera image in pixels.
    """

    def __init__(
        self,
        task: str,
        cameras: tuple[str, ...] | list[str] = ("top",),
        resolution: tuple[int, int] = CAMERA_RESOLUTION,
    ):
        self.spec = task_spec(task)
        self.physics = mujoco.Physics.from_xml_path(str(ASSETS_DIR / self.spec.joint_scene))
        make_cheap(self.physics)
        self.task = self.spec.task_class()
        self.cameras = list(cameras)
        self.width, self.height = resolution
        self.substeps = round(CONTROL_PERIOD_S / self.physics.timestep())
        self.step_count = 0
        self.rewards: list[int] = []
        self.seed: int | None = None
        # mujoco's own renderer (dm_control's render executor complains at interpreter exit)
        self._renderer: mj.Renderer | None = None

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def reset(self, seed: int) -> None:
        """Start an episode: arms at the start pose, objects placed from `seed`."""
        joint_tasks.BOX_POSE[0] = object_poses(self.spec.name, seed)  # read by the task's initialize_episode
        with self.physics.reset_context():
            self.task.initialize_episode(self.physics)
        self.seed = seed
        self.step_count = 0
        self.rewards = []

    @property
    def time_s(self) -> float:
        return self.step_count * CONTROL_PERIOD_S

    def qpos(self) -> np.ndarray:
        """(14,) joint positions, grippers normalised."""
        return self.task.get_qpos(self.physics)

    def images(self) -> dict[str, np.ndarray]:
        """camera -> (height, width, 3) uint8 RGB."""
        if self._renderer is None:
            self._renderer = mj.Renderer(self.physics.model.ptr, self.height, self.width)
        out = {}
        for camera in self.cameras:
            self._renderer.update_scene(self.physics.data.ptr, camera=camera)
            out[camera] = self._renderer.render().copy()
        return out

    def step(self, action: np.ndarray) -> int:
        """Apply a (14,) joint-position target for one control period; returns the reward (0..4)."""
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (14,) or not np.isfinite(action).all():
            raise ValueError(f"action must be 14 finite numbers, got shape {action.shape}")
        self.task.before_step(action, self.physics)
        for _ in range(self.substeps):
            self.physics.step()
        self.task.after_step(self.physics)
        self.step_count += 1
        reward = int(self.task.get_reward(self.physics))
        self.rewards.append(reward)
        return reward

    def success(self) -> dict[str, bool]:
        """Both criteria of the reference: max reward reached 4, and reward 4 at the last step."""
        return {
            "reached": bool(self.rewards) and max(self.rewards) == MAX_REWARD,
            "final": bool(self.rewards) and self.rewards[-1] == MAX_REWARD,
        }
