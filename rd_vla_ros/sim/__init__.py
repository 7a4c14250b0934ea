"""Simulated ALOHA (gym-aloha's MuJoCo scenes): environment, scripted demonstrations, ROS bridge, evaluation.

MuJoCo needs an offscreen GL before dm_control or mujoco's renderer is imported: OSMesa (Debian's
libosmesa6) works on machines with no display and no GPU; set MUJOCO_GL=egl to use a GPU.
"""

import os

os.environ.setdefault("MUJOCO_GL", "osmesa")
if os.environ["MUJOCO_GL"] == "osmesa":
    os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
