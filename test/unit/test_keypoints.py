"""The conv keypoint encoder: spatial softmax against a naive reference, token layout in the
backbone, configuration errors, and that it learns where an object is from pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rd_vla_ros.model.backbone import VisionLanguageBackbone
from rd_vla_ros.model.backbone_config import BackboneConfig
from rd_vla_ros.model.checkpoint import load_policy, save_policy
from rd_vla_ros.model.config import make_config
from rd_vla_ros.model.keypoints import ConvKeypointEncoder, SpatialSoftmax
from rd_vla_ros.model.policy import RDVLAPolicy


def test_spatial_softmax_matches_a_naive_expectation() -> None:
    g = torch.Generator().manual_seed(0)
    maps = torch.randn(3, 5, 6, 7, generator=g) * 3  # (N, K, H, W)
    layer = SpatialSoftmax(6, 7)
    with torch.no_grad():
        layer.log_temperature.fill_(np.log(0.5))
        got = layer(maps)  # (N, K, 2)
    xs, ys = np.linspace(-1, 1, 7), np.linspace(-1, 1, 6)
    for n in range(3):
        for k in range(5):
            w = np.exp(maps[n, k].double().numpy() / 0.5)
            w /= w.sum()
            expected = (float((w.sum(0) * xs).sum()), float((w.sum(1) * ys).sum()))
            assert got[n, k].tolist() == pytest.approx(expected, abs=1e-5)


def test_a_sharp_map_points_at_its_peak() -> None:
    maps = torch.full((1, 1, 24, 24), -50.0)
    maps[0, 0, 18, 6] = 50.0  # row 18 (y), column 6 (x)
    x, y = SpatialSoftmax(24, 24)(maps)[0, 0].tolist()
    assert x == pytest.approx(-1 + 2 * 6 / 23, abs=1e-4) and y == pytest.approx(-1 + 2 * 18 / 23, abs=1e-4)


def test_conv_backbone_gives_keypoint_tokens_per_camera() -> None:
    cfg = BackboneConfig.from_preset("conv", num_cameras=2, num_keypoints=12)
    assert cfg.patches_per_camera == 12 and cfg.num_vision_tokens == 24
    torch.manual_seed(0)
    backbone = VisionLanguageBackbone(cfg).eval()
    assert len(backbone.vision) == 2 and all(isinstance(e, ConvKeypointEncoder) for e in backbone.vision)
    images = torch.rand(3, 2, 3, 96, 96)
    ids, mask = backbone.encode_instructions(["a", "bb", "transfer the cube"])
    feats = backbone(images, ids, mask)
    assert feats.num_vision_tokens == 24 and feats.last_task.shape[1] == 24 + ids.shape[1]
    swapped = backbone.encode_images(images.flip(1))  # each camera has its own encoder
    assert not torch.allclose(swapped, backbone.encode_images(images))
    with pytest.raises(ValueError, match=r"expected images \(B, 2, 3, 96, 96\)"):
        backbone.encode_images(torch.rand(1, 2, 3, 64, 64))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"vision_encoders": ["conv", "siglip"]}, "cannot be combined"),
     ({"conv_channels": [32, 64], "conv_strides": [2]}, "one entry per conv block"),
     ({"conv_strides": [2, 0, 2, 1]}, "conv_strides must hold positive integers"),
     ({"num_keypoints": 0}, "num_keypoints must be a positive integer"),
     ({"vision_paths": ["/some/vit"]}, "no pretrained weights")],
)  # fmt: skip
def test_conv_configuration_errors_name_the_field(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BackboneConfig.from_preset("conv", **overrides)


def test_conv_checkpoint_round_trip(tmp_path) -> None:
    torch.manual_seed(0)
    policy = RDVLAPolicy(make_config("conv", camera_names=["top"])).eval()
    save_policy(policy, tmp_path)
    loaded = load_policy(tmp_path)
    assert loaded.config.backbone.vision_encoders == ["conv"] and loaded.config.camera_names == ["top"]
    obs = {"images": torch.rand(2, 1, 3, 96, 96), "proprio": torch.randn(2, 14), "instruction": ["a", "b"]}
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a = policy.predict_action_chunk(obs, generator=g1)
    b = loaded.predict_action_chunk(obs, generator=g2)
    assert torch.equal(a.actions, b.actions)


def test_the_encoder_learns_where_a_small_object_is() -> None:
    """A 4 px square on a textured 48 px background, anywhere: after 150 steps the keypoints locate
    it (a linear read-out) ten times better than predicting the mean position does."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)

    def batch(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        images = rng.uniform(0.3, 0.5, (n, 3, 48, 48)).astype(np.float32)
        where = rng.integers(2, 42, (n, 2))  # (x, y) of the square's corner
        for i, (x, y) in enumerate(where):
            images[i, :, y : y + 4, x : x + 4] = np.array([0.9, 0.1, 0.1])[:, None, None]
        return torch.from_numpy(images), torch.from_numpy((where + 2) / 24.0 - 1).float()  # centre in [-1, 1]

    encoder = ConvKeypointEncoder(48, [16, 16], [2, 1], 8, 16)
    readout = torch.nn.Linear(16, 2)
    params = [*encoder.parameters(), *readout.parameters()]
    optimizer = torch.optim.AdamW(params, lr=3e-3)
    for _ in range(150):
        images, target = batch(32)
        pred = readout(encoder.keypoints(images).flatten(1))  # (N, 2)
        loss = (pred - target).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    images, target = batch(256)
    with torch.no_grad():
        error = (readout(encoder.keypoints(images).flatten(1)) - target).abs().mean()
    baseline = (target - target.mean(0)).abs().mean()
    assert float(error) < 0.1 * float(baseline), (float(error), float(baseline))
