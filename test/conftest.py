"""Test-wide isolation: ROS traffic stays on this machine in a domain of its own; logs in build/."""

from __future__ import annotations

import os
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Before anything imports rclpy. `make test` exports these; plain `pytest` gets the same defaults.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(10, 99)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_LOG_DIR", str(ROOT / "build" / "ros_log"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
Path(os.environ["ROS_LOG_DIR"]).mkdir(parents=True, exist_ok=True)
