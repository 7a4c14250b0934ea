"""Convolutional keypoint encoder (`vision_encoders: ["conv"]`): a camera image -> K keypoint tokens.

    image (N, 3, S, S) in [0, 1]
      -> conv trunk: 3x3 conv + GroupNorm + ReLU blocks (some of stride 2)    (N, Ch, S', S')
      -> 1x1 conv to K keypoint maps                                          (N, K, S', S')
      -> spatial softmax (learned temperature): expected (x, y) in [-1, 1]    (N, K, 2)
      -> tokens: Linear(2 -> Hv)(x, y) + the keypoint's learned embedding     (N, K, Hv)

The image encoder of robomimic and Diffusion Policy made small (GroupNorm, a spatial-softmax head),
trained from scratch with random-shift augmentation (DrQ). A ViT with 16 px patches at 64 px sees a
2 cm cube as a few pixels inside a patch and its features barely move with it; a keypoint is an
expected position over a whole feature map, so it follows an object to a fraction of a cell.
The tokens take the place of ViT patch tokens: the backbone projects them to the LLM width.
"""

from __future__ import annotations

import torch
from torch import nn

# ImageNet statistics, the usual input normalisation of a conv net trained from scratch.
PIXEL_MEAN = (0.485, 0.456, 0.406)
PIXEL_STD = (0.229, 0.224, 0.225)


class SpatialSoftmax(nn.Module):
    """(N, K, H, W) maps -> (N, K, 2) expected (x, y) of each map's softmax, coordinates in [-1, 1]."""

    def __init__(self, height: int, width: int) -> None:
        super().__init__()
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
        self.register_buffer("grid", torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1), persistent=False)
        self.log_temperature = nn.Parameter(torch.zeros(()))  # softmax(maps / T), T learned, starts at 1

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        n, k = maps.shape[:2]
        logits = maps.reshape(n, k, -1) / self.log_temperature.exp()  # (N, K, H*W)
        return logits.softmax(dim=-1) @ self.grid  # (N, K, 2)


class ConvKeypointEncoder(nn.Module):
    """One camera's conv trunk and keypoint head.

    Args:
        image_size: square input side S (px).
        channels / strides: one 3x3 conv block per entry (GroupNorm with 8 groups or fewer, ReLU).
        num_keypoints: K, keypoint maps = tokens per camera.
        token_width: Hv, width of each keypoint token (the backbone's projector maps it to the LLM width).
    """

    def __init__(
        self, image_size: int, channels: list[int], strides: list[int], num_keypoints: int, token_width: int
    ) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        size, previous = image_size, 3
        for out, stride in zip(channels, strides, strict=True):
            blocks += [
                nn.Conv2d(previous, out, 3, stride=stride, padding=1, bias=False),
                nn.GroupNorm(min(8, out), out),
                nn.ReLU(inplace=True),
            ]
            size, previous = (size + 2 - 3) // stride + 1, out
        self.trunk = nn.Sequential(*blocks)
        self.keypoint_maps = nn.Conv2d(previous, num_keypoints, 1)
        self.spatial_softmax = SpatialSoftmax(size, size)
        self.coordinate_proj = nn.Linear(2, token_width)
        self.keypoint_embed = nn.Parameter(torch.randn(num_keypoints, token_width) * 0.02)  # (K, Hv)
        self.register_buffer("pixel_mean", torch.tensor(PIXEL_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(PIXEL_STD).view(1, 3, 1, 1), persistent=False)
        self.feature_size = size

    def keypoints(self, images: torch.Tensor) -> torch.Tensor:
        """images (N, 3, S, S) in [0, 1] -> keypoints (N, K, 2), (x, y) in [-1, 1]."""
        pixels = (images - self.pixel_mean.to(images.dtype)) / self.pixel_std.to(images.dtype)
        maps = self.keypoint_maps(self.trunk(pixels))  # (N, K, S', S')
        return self.spatial_softmax(maps)  # (N, K, 2)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (N, 3, S, S) in [0, 1] -> keypoint tokens (N, K, Hv)."""
        return self.coordinate_proj(self.keypoints(images)) + self.keypoint_embed  # (N, K, Hv)
