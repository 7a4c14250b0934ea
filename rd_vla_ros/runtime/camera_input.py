"""A camera frame as the policy sees it: an optional crop (region of interest), then a square resize.

One function for every path an image takes into the model: the node and the simulation (through
PolicyRunner) and training from bags (rd_vla_ros.ros.episodes), so a checkpoint trained on crops is
fed crops everywhere. Crops are fractions of the incoming frame, so they survive a change of the
camera's resolution (not of its aspect or mounting).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image as PILImage


def check_crop(crop: Sequence[float], where: str = "crop") -> None:
    """ValueError naming `where` unless crop = (left, top, right, bottom) fractions with 0 <= left <
    right <= 1 and 0 <= top < bottom <= 1."""
    values = list(crop)
    if len(values) != 4 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
        raise ValueError(f"{where} must be 4 finite fractions [left, top, right, bottom], got {values}")
    left, top, right, bottom = values
    if not (0 <= left < right <= 1 and 0 <= top < bottom <= 1):
        raise ValueError(f"{where} must satisfy 0 <= left < right <= 1 and 0 <= top < bottom <= 1, got {values}")


def crop_box(width: int, height: int, crop: Sequence[float]) -> tuple[int, int, int, int]:
    """Pixel box (x0, y0, x1, y1) of a fractional crop of a width x height frame; at least 1 px each way."""
    left, top, right, bottom = crop
    x0, y0 = min(round(left * width), width - 1), min(round(top * height), height - 1)
    return x0, y0, max(x0 + 1, round(right * width)), max(y0 + 1, round(bottom * height))


def resize_rgb(image: np.ndarray, size: int) -> np.ndarray:
    """Resize (H, W, 3) uint8 to (size, size, 3) with bilinear filtering (no-op when already that size)."""
    if image.shape[0] == size and image.shape[1] == size:
        return image
    return np.asarray(PILImage.fromarray(np.ascontiguousarray(image)).resize((size, size), PILImage.BILINEAR))


def prepare_image(image: np.ndarray, size: int, crop: Sequence[float] | None = None) -> np.ndarray:
    """(H, W, 3) uint8 frame -> (size, size, 3) uint8: crop (fractions, None = whole frame), then resize."""
    if crop is not None:
        x0, y0, x1, y1 = crop_box(image.shape[1], image.shape[0], crop)
        image = image[y0:y1, x0:x1]
    return resize_rgb(image, size)


def parse_crops(items: list[str]) -> dict[str, list[float]]:
    """['top=0.1,0.2,0.9,0.8', ...] -> {'top': [0.1, 0.2, 0.9, 0.8]}; ValueError names a malformed item."""
    crops: dict[str, list[float]] = {}
    for item in items:
        name, eq, values = item.partition("=")
        try:
            crops[name.strip()] = [float(v) for v in values.split(",")]
        except ValueError:
            raise ValueError(f"--crop {item!r}: expected CAMERA=LEFT,TOP,RIGHT,BOTTOM (fractions)") from None
        if not eq or not name.strip():
            raise ValueError(f"--crop {item!r}: expected CAMERA=LEFT,TOP,RIGHT,BOTTOM (fractions)")
    return crops
