"""sensor_msgs/Image and CompressedImage -> RGB arrays, honouring encoding, step and endianness.

cv_bridge for ROS 2 is not on PyPI (and the PyPI `cv-bridge` is the broken ROS 1 port), so the
conversion is done here: the array is a strided view of the message buffer (rows `step` bytes apart,
padding ignored), then converted to (H, W, 3) uint8 RGB, the policy's input format.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image as PILImage
from PIL import UnidentifiedImageError


class ImageError(ValueError):
    """A camera message that cannot be turned into an image; the message says why."""


@dataclass(frozen=True)
class _Encoding:
    channels: int
    dtype: np.dtype
    order: str  # channel order after decoding: "rgb", "bgr", "rgba", "bgra", "mono"


_ENCODINGS: dict[str, _Encoding] = {
    "rgb8": _Encoding(3, np.dtype(np.uint8), "rgb"),
    "bgr8": _Encoding(3, np.dtype(np.uint8), "bgr"),
    "rgba8": _Encoding(4, np.dtype(np.uint8), "rgba"),
    "bgra8": _Encoding(4, np.dtype(np.uint8), "bgra"),
    "mono8": _Encoding(1, np.dtype(np.uint8), "mono"),
    "8UC1": _Encoding(1, np.dtype(np.uint8), "mono"),
    "8UC3": _Encoding(3, np.dtype(np.uint8), "bgr"),  # OpenCV convention
    "mono16": _Encoding(1, np.dtype(np.uint16), "mono"),
    "16UC1": _Encoding(1, np.dtype(np.uint16), "mono"),
    "rgb16": _Encoding(3, np.dtype(np.uint16), "rgb"),
    "bgr16": _Encoding(3, np.dtype(np.uint16), "bgr"),
}
SUPPORTED_ENCODINGS = tuple(_ENCODINGS)
MAX_SIDE = 8192  # larger images are rejected rather than allocated


def image_to_rgb(msg: object) -> np.ndarray:
    """Decode a `sensor_msgs/Image` into (H, W, 3) uint8 RGB.

    16-bit images are scaled to 8 bits (>> 8). Raises ImageError on unknown encodings, zero or huge
    sizes, a `step` shorter than a row, or a buffer shorter than `height * step`.
    """
    encoding = str(msg.encoding)
    spec = _ENCODINGS.get(encoding)
    if spec is None:
        raise ImageError(f"unsupported encoding '{encoding}' (supported: {', '.join(SUPPORTED_ENCODINGS)})")
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if not (0 < height <= MAX_SIDE and 0 < width <= MAX_SIDE):
        raise ImageError(f"image size {width}x{height} outside 1..{MAX_SIDE}")
    row_bytes = width * spec.channels * spec.dtype.itemsize
    if step < row_bytes:
        raise ImageError(f"step {step} shorter than one row of {width} px {encoding} ({row_bytes} bytes)")
    data = msg.data
    buffer = data if isinstance(data, (bytes, bytearray, memoryview)) else bytes(data)
    buffer = np.frombuffer(buffer, dtype=np.uint8)
    needed = (height - 1) * step + row_bytes
    if buffer.size < needed:
        raise ImageError(f"data has {buffer.size} bytes, {width}x{height} {encoding} with step {step} needs {needed}")
    dtype = spec.dtype.newbyteorder(">" if msg.is_bigendian else "<") if spec.dtype.itemsize > 1 else spec.dtype
    item = spec.dtype.itemsize
    view = np.ndarray(
        shape=(height, width, spec.channels),
        dtype=dtype,
        buffer=buffer,
        strides=(step, spec.channels * item, item),
    )  # (H, W, C) strided view of the message: row padding skipped
    pixels = view.astype(np.uint16 if item > 1 else np.uint8)  # native byte order, owns its memory
    if item > 1:
        pixels = (pixels >> 8).astype(np.uint8)
    return _to_rgb(pixels, spec.order)


def compressed_to_rgb(msg: object) -> np.ndarray:
    """Decode a `sensor_msgs/CompressedImage` (jpeg / png) into (H, W, 3) uint8 RGB."""
    data = bytes(msg.data)
    if not data:
        raise ImageError("compressed image has no data")
    try:
        with PILImage.open(io.BytesIO(data)) as img:
            if max(img.size) > MAX_SIDE:
                raise ImageError(f"compressed image size {img.size} outside 1..{MAX_SIDE}")
            rgb = np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ImageError(f"cannot decode compressed image (format '{msg.format}'): {err}") from err
    return rgb


def _to_rgb(pixels: np.ndarray, order: str) -> np.ndarray:
    if order == "rgb":
        return pixels
    if order == "mono":
        return np.repeat(pixels, 3, axis=2)
    if order == "rgba":
        return pixels[..., :3]
    if order == "bgr":
        return pixels[..., ::-1]
    return pixels[..., 2::-1]  # bgra: B,G,R -> R,G,B
