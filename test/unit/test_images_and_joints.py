"""Image decoding (encoding, step padding, endianness, bad input) and joint mapping by name."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage
from sensor_msgs.msg import CompressedImage, Image

from rd_vla_ros.model.config import make_config
from rd_vla_ros.ros.images import ImageError, compressed_to_rgb, image_to_rgb
from rd_vla_ros.runtime.camera_input import check_crop, crop_box, prepare_image, resize_rgb
from rd_vla_ros.runtime.joints import JointMapper, JointStateError, parse_renames

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)


def make_image(pixels: np.ndarray, encoding: str, pad: int = 0, bigendian: bool = False) -> Image:
    """Build an Image the way a camera driver would, with `pad` bytes of padding per row."""
    h, w = pixels.shape[:2]
    arr = pixels.astype(pixels.dtype.newbyteorder(">" if bigendian else "<"))
    rows = arr.reshape(h, -1).view(np.uint8).reshape(h, -1)
    padded = np.concatenate([rows, np.full((h, pad), 0xAB, np.uint8)], axis=1)
    return Image(
        height=h, width=w, encoding=encoding, is_bigendian=int(bigendian), step=padded.shape[1], data=padded.tobytes()
    )


@pytest.mark.parametrize("pad", [0, 3, 16])
def test_rgb_bgr_rgba_bgra_mono(pad: int) -> None:
    np.testing.assert_array_equal(image_to_rgb(make_image(RGB, "rgb8", pad)), RGB)
    np.testing.assert_array_equal(image_to_rgb(make_image(RGB[..., ::-1].copy(), "bgr8", pad)), RGB)
    rgba = np.concatenate([RGB, np.full((5, 7, 1), 9, np.uint8)], axis=2)
    np.testing.assert_array_equal(image_to_rgb(make_image(rgba, "rgba8", pad)), RGB)
    bgra = np.concatenate([RGB[..., ::-1], np.full((5, 7, 1), 9, np.uint8)], axis=2)
    np.testing.assert_array_equal(image_to_rgb(make_image(bgra, "bgra8", pad)), RGB)
    mono = RGB[..., :1].copy()
    np.testing.assert_array_equal(image_to_rgb(make_image(mono, "mono8", pad)), np.repeat(mono, 3, 2))


@pytest.mark.parametrize("bigendian", [False, True])
def test_16_bit_honours_endianness(bigendian: bool) -> None:
    depth = (RGB[..., :1].astype(np.uint16) << 8) | 0x7F  # high byte = the 8-bit value
    out = image_to_rgb(make_image(depth, "16UC1", pad=2, bigendian=bigendian))
    np.testing.assert_array_equal(out, np.repeat(RGB[..., :1], 3, 2))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda m: setattr(m, "encoding", "yuv422"), "unsupported encoding 'yuv422'"),
        (lambda m: setattr(m, "width", 0), "outside 1.."),
        (lambda m: setattr(m, "height", 100_000), "outside 1.."),
        (lambda m: setattr(m, "step", 20), "step 20 shorter than one row"),
        (lambda m: setattr(m, "data", bytes(m.data)[:-5]), "data has"),
        (lambda m: setattr(m, "data", b""), "data has 0 bytes"),
    ],
)
def test_bad_images_are_rejected_with_a_reason(mutate, message: str) -> None:
    msg = make_image(RGB, "rgb8")
    mutate(msg)
    with pytest.raises(ImageError, match=message):
        image_to_rgb(msg)


@settings(max_examples=200, deadline=None)
@given(
    height=st.integers(-2, 40),
    width=st.integers(-2, 40),
    step=st.integers(-4, 200),
    encoding=st.sampled_from(["rgb8", "bgr8", "mono8", "16UC1", "rgba8", "weird"]),
    data=st.binary(max_size=3000),
    bigendian=st.booleans(),
)
def test_arbitrary_image_messages_never_crash(height, width, step, encoding, data, bigendian) -> None:
    msg = Image()
    msg.height, msg.width, msg.step = max(height, 0), max(width, 0), max(step, 0)
    msg.encoding, msg.data, msg.is_bigendian = encoding, data, int(bigendian)
    try:
        out = image_to_rgb(msg)
    except ImageError:
        return
    assert out.shape == (msg.height, msg.width, 3) and out.dtype == np.uint8


def test_compressed_png_and_jpeg() -> None:
    for fmt in ("png", "jpeg"):
        buf = io.BytesIO()
        PILImage.fromarray(RGB).save(buf, format=fmt.upper())
        out = compressed_to_rgb(CompressedImage(format=fmt, data=buf.getvalue()))
        assert out.shape == (5, 7, 3)
        if fmt == "png":
            np.testing.assert_array_equal(out, RGB)
    with pytest.raises(ImageError, match="no data"):
        compressed_to_rgb(CompressedImage(format="jpeg", data=b""))
    with pytest.raises(ImageError, match="cannot decode"):
        compressed_to_rgb(CompressedImage(format="jpeg", data=b"\xff\xd8 not a jpeg"))


def test_resize() -> None:
    big = resize_rgb(RGB, 16)
    assert big.shape == (16, 16, 3) and big.dtype == np.uint8
    flat = np.full((5, 7, 3), 77, np.uint8)
    np.testing.assert_array_equal(resize_rgb(flat, 9), np.full((9, 9, 3), 77, np.uint8))  # filter preserves flat
    square = RGB[:5, :5]
    assert resize_rgb(square, 5) is square  # already the right size: no copy


def test_crop_then_resize_sees_only_the_region() -> None:
    frame = np.zeros((120, 160, 3), np.uint8)
    frame[20:100, 40:120] = 200  # the region of interest, everything else black
    frame[60, 80] = (255, 0, 0)
    assert crop_box(160, 120, [0.25, 1 / 6, 0.75, 5 / 6]) == (40, 20, 120, 100)
    out = prepare_image(frame, 32, [0.25, 1 / 6, 0.75, 5 / 6])
    assert out.shape == (32, 32, 3) and out.min() > 0  # no black border left
    whole = prepare_image(frame, 32)
    assert whole.min() == 0  # without the crop the border is there
    assert crop_box(10, 10, [0.99, 0.99, 1.0, 1.0]) == (9, 9, 10, 10)  # never empty


@pytest.mark.parametrize("crop", [[0.5, 0.0, 0.5, 1.0], [0.0, 0.0, 1.2, 1.0], [0.1, 0.2, 0.3], [0, 0, 1, float("nan")]])
def test_bad_crops_are_refused(crop: list) -> None:
    with pytest.raises(ValueError, match="crop"):
        check_crop(crop)
    with pytest.raises(ValueError, match=r"camera_crops\['top'\]"):
        make_config("tiny", camera_names=["top"], camera_crops={"top": crop})
    with pytest.raises(ValueError, match="names camera 'side'"):
        make_config("tiny", camera_names=["top"], camera_crops={"side": [0, 0, 1, 1]})


def test_joint_mapping_by_name() -> None:
    mapper = JointMapper(["b", "a", "c"])
    np.testing.assert_array_equal(mapper.positions(["a", "x", "b", "c"], [1.0, 9.0, 2.0, 3.0]), [2.0, 1.0, 3.0])
    np.testing.assert_array_equal(mapper.positions(["c", "b", "a"], [3.0, 2.0, 1.0]), [2.0, 1.0, 3.0])
    with pytest.raises(JointStateError, match=r"lacks joints \['c'\]"):
        mapper.positions(["a", "b"], [1.0, 2.0])
    with pytest.raises(JointStateError, match="3 names but 2 positions"):
        mapper.positions(["a", "b", "c"], [1.0, 2.0])
    with pytest.raises(JointStateError, match=r"non-finite position for \['a'\]"):
        mapper.positions(["a", "b", "c"], [float("nan"), 2.0, 3.0])
    with pytest.raises(JointStateError, match="duplicate"):
        mapper.positions(["a", "a", "b", "c"], [1.0, 1.0, 2.0, 3.0])
    assert mapper.missing(["a"]) == ["b", "c"]


def test_joint_mapping_with_renames_and_positional_names() -> None:
    renamed = JointMapper(["b", "a"], renames={"q0": "a", "q1": "b"})
    np.testing.assert_array_equal(renamed.positions(["q0", "q1", "x"], [1.0, 2.0, 9.0]), [2.0, 1.0])
    np.testing.assert_array_equal(renamed.positions(["b", "a"], [2.0, 1.0]), [2.0, 1.0])  # unlisted: as published
    with pytest.raises(JointStateError, match="duplicate joint names after renaming"):
        renamed.positions(["q0", "a", "b"], [1.0, 1.0, 2.0])
    assert renamed.missing(["q0"]) == ["b"]
    positional = JointMapper(["b", "a"], positional_names=["a", "b", "x"])
    np.testing.assert_array_equal(positional.positions([], [1.0, 2.0, 9.0]), [2.0, 1.0])
    np.testing.assert_array_equal(positional.positions(["b", "a"], [5.0, 6.0]), [5.0, 6.0])  # names win
    with pytest.raises(JointStateError, match="3 names but 2 positions"):
        positional.positions([], [1.0, 2.0])
    with pytest.raises(JointStateError, match="0 names but 2 positions"):
        JointMapper(["a", "b"]).positions([], [1.0, 2.0])  # no positional names: rejected as before
    both = JointMapper(["a", "b"], renames={"q0": "a", "q1": "b"}, positional_names=["q1", "q0"])
    np.testing.assert_array_equal(both.positions([], [1.0, 2.0]), [2.0, 1.0])


def test_rename_items_parse_or_say_what_is_wrong() -> None:
    assert parse_renames(["q0=a", " q1 = b "]) == {"q0": "a", "q1": "b"}
    for bad, reason in ((["q0"], "not PUBLISHED_NAME=ROBOT_JOINT"), (["=a"], "not"), (["q0=a", "q0=b"], "twice")):
        with pytest.raises(ValueError, match=reason):
            parse_renames(bad)
