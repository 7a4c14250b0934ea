"""The vision-language backbone: presets, token split, padding invariance, freezing, LoRA, real weights."""

from __future__ import annotations

import time

import pytest
import torch

from rd_vla_ros.model.backbone import VisionLanguageBackbone, smollm2_gguf
from rd_vla_ros.model.backbone_config import BackboneConfig
from rd_vla_ros.model.halting import make_criterion
from rd_vla_ros.model.head import RecurrentDepthHead
from rd_vla_ros.model.head_config import HeadConfig
from rd_vla_ros.model.tokenizers import QwenTokenizer


@pytest.fixture(scope="module")
def tiny() -> VisionLanguageBackbone:
    torch.manual_seed(0)
    return VisionLanguageBackbone(BackboneConfig.from_preset("tiny")).eval()


def images(b: int, cfg: BackboneConfig, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, cfg.num_cameras, 3, cfg.image_size, cfg.image_size, generator=g)


def test_tiny_forward_splits_vision_task_and_latent_tokens(tiny: VisionLanguageBackbone) -> None:
    cfg = tiny.config
    ids, mask = tiny.encode_instructions(["pick up the cube", "insert the peg"])
    feats = tiny(images(2, cfg), ids, mask)
    n = cfg.num_vision_tokens + ids.shape[1]
    assert feats.num_vision_tokens == cfg.num_vision_tokens == 2 * 16
    assert feats.mid_task.shape == feats.last_task.shape == (2, n, 64)
    assert feats.mid_latent.shape == feats.last_latent.shape == (2, cfg.num_latent_tokens, 64)
    assert feats.task_mask.shape == (2, n)
    assert feats.task_mask[:, : cfg.num_vision_tokens].all()
    assert feats.task_mask[1].sum().item() == cfg.num_vision_tokens + len("insert the peg") + 1  # + bos
    assert not torch.allclose(feats.mid_task, feats.last_task)


def test_mid_and_last_are_the_llm_hidden_states(tiny: VisionLanguageBackbone) -> None:
    cfg = tiny.config
    ids, mask = tiny.encode_instructions(["fold the towel"])
    imgs = images(1, cfg)
    feats = tiny(imgs, ids, mask)
    inputs = torch.cat(
        [tiny.encode_images(imgs), tiny.lm.get_input_embeddings()(ids), tiny.latent_tokens.unsqueeze(0)], dim=1
    )
    direct = tiny.lm.get_decoder()(inputs_embeds=inputs, output_hidden_states=True).hidden_states
    assert tiny.mid_layer == cfg.llm_layers // 2
    torch.testing.assert_close(torch.cat([feats.mid_task, feats.mid_latent], 1), direct[tiny.mid_layer])
    torch.testing.assert_close(torch.cat([feats.last_task, feats.last_latent], 1), direct[-1])


def test_padding_does_not_change_a_samples_features(tiny: VisionLanguageBackbone) -> None:
    cfg = tiny.config
    imgs = images(2, cfg)
    alone = tiny(imgs[:1], *tiny.encode_instructions(["go"]))
    batched = tiny(imgs, *tiny.encode_instructions(["go", "a much longer instruction with padding"]))
    t = alone.last_task.shape[1]
    torch.testing.assert_close(batched.last_task[:1, :t], alone.last_task, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(batched.last_latent[:1], alone.last_latent, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(batched.mid_latent[:1], alone.mid_latent, atol=1e-5, rtol=1e-4)


def test_frozen_by_default_and_lora_adds_only_adapters() -> None:
    frozen = VisionLanguageBackbone(BackboneConfig.from_preset("tiny"))
    trainable = {n for n, p in frozen.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in frozen.named_parameters() if n.startswith(("projector.", "latent_tokens"))}
    lora = VisionLanguageBackbone(BackboneConfig.from_preset("tiny", lora_rank=4))
    lora_trainable = {n for n, p in lora.named_parameters() if p.requires_grad}
    added = lora_trainable - trainable
    assert added and all("lora_" in n for n in added)
    assert not any(p.requires_grad for n, p in lora.named_parameters() if n.startswith("lm.") and "lora_" not in n)
    ids, mask = lora.encode_instructions(["x"])
    lora.train()(images(1, lora.config), ids, mask).last_latent.sum().backward()
    assert all(p.grad is not None for n, p in lora.named_parameters() if "lora_B" in n)


def test_dinov2_siglip_pair_concatenates_channels() -> None:
    cfg = BackboneConfig.from_preset("tiny", vision_encoders=["dinov2", "siglip"])
    bb = VisionLanguageBackbone(cfg).eval()
    assert bb.projector[0].in_features == 2 * cfg.vision_hidden
    feats = bb(images(1, cfg), *bb.encode_instructions(["x"]))
    assert feats.num_vision_tokens == cfg.num_vision_tokens


def test_paper_preset_sizes_without_allocating() -> None:
    with torch.device("meta"):
        bb = VisionLanguageBackbone(BackboneConfig.from_preset("paper"))
    assert (bb.width, bb.num_layers, bb.mid_layer) == (896, 24, 12)
    assert bb.config.num_vision_tokens == 512 and bb.config.num_latent_tokens == 64
    assert sum(p.numel() for p in bb.lm.parameters()) == 494_032_768  # Qwen2.5-0.5B
    assert bb.config.vision_encoders == ["dinov2", "siglip"]


def test_config_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match=r"BackboneConfig\.image_size .* multiple of patch_size"):
        BackboneConfig.from_preset("tiny", image_size=70)
    with pytest.raises(ValueError, match=r"BackboneConfig\.vision_encoders"):
        BackboneConfig.from_preset("tiny", vision_encoders=["clip"])
    with pytest.raises(ValueError, match="unknown backbone preset 'huge'"):
        BackboneConfig.from_preset("huge")


def test_images_of_the_wrong_shape_are_rejected(tiny: VisionLanguageBackbone) -> None:
    with pytest.raises(ValueError, match=r"expected images \(B, 2, 3, 64, 64\)"):
        tiny(torch.rand(1, 1, 3, 64, 64), *tiny.encode_instructions(["x"]))


def test_qwen25_vocabulary_from_the_shipped_package() -> None:
    tok = QwenTokenizer()
    ids = tok.encode("Pick up the red cube and hand it over.")
    assert all(0 <= i < 151643 for i in ids) and len(ids) < 15
    assert tok.decode(ids) == "Pick up the red cube and hand it over."
    assert tok.encode("hello") == [14990]  # Qwen2.5 id of "hello"


def test_pretrained_smollm2_loads_offline_and_feeds_the_head() -> None:
    directory, gguf = smollm2_gguf()
    start = time.perf_counter()
    cfg = BackboneConfig.from_preset(
        "tiny", llm_path=directory, gguf_file=gguf, tokenizer="hf", num_latent_tokens=8, lora_rank=0
    )
    bb = VisionLanguageBackbone(cfg).eval()
    load_s = time.perf_counter() - start
    assert (bb.width, bb.num_layers, bb.mid_layer) == (576, 30, 15)
    assert cfg.llm_config is not None and cfg.llm_config["model_type"] == "llama"
    ids, mask = bb.encode_instructions(["pick up the cube"])
    assert ids.shape[1] >= 4  # real BPE tokens from the GGUF's vocabulary
    with torch.no_grad():
        feats = bb(images(1, cfg), ids, mask)
    assert feats.last_task.shape[-1] == 576 and torch.isfinite(feats.last_task).all()
    # a pretrained model: its next-token prediction for a natural prefix is a plausible word
    text_ids = torch.tensor([bb.tokenizer.encode("The capital of France is")])
    with torch.no_grad():
        next_id = bb.lm(input_ids=text_ids).logits[0, -1].argmax().item()
    assert "Paris" in bb.tokenizer.decode([next_id])
    head = RecurrentDepthHead(HeadConfig(d_model=64, backbone_width=576, num_heads=4, action_dim=14, proprio_dim=14))
    out = head.iterate(feats, torch.zeros(1, 14), make_criterion("action_mse"), 1, 4)
    assert out.actions.shape == (1, 8, 14) and torch.isfinite(out.actions).all()
    assert load_s < 120


def _siglip(b: BackboneConfig, **extra: object):  # a "pretrained" SigLIP vision tower of the tiny sizes
    from transformers import SiglipVisionConfig, SiglipVisionModel

    return SiglipVisionModel(SiglipVisionConfig(
        hidden_size=b.vision_hidden, num_hidden_layers=b.vision_layers, num_attention_heads=b.vision_heads,
        intermediate_size=b.vision_intermediate, patch_size=b.patch_size, **extra))  # fmt: skip


def test_pretrained_vision_encoder_loads_offline_and_checkpoints_rebuild_it(tmp_path) -> None:
    import shutil

    from rd_vla_ros.model.checkpoint import load_policy, save_policy
    from rd_vla_ros.model.config import make_config
    from rd_vla_ros.model.policy import RDVLAPolicy

    b = make_config("tiny").backbone
    torch.manual_seed(3)
    # layer_norm_eps is not one of the sizes: only the stored architecture can rebuild it
    pretrained = _siglip(b, image_size=b.image_size, layer_norm_eps=1e-3).eval()
    pretrained.save_pretrained(tmp_path / "siglip")  # config.json + model.safetensors, as on a hub
    assert (tmp_path / "siglip" / "model.safetensors").is_file()
    config = make_config("tiny", vision_paths=[str(tmp_path / "siglip")])
    policy = RDVLAPolicy(config).eval()
    encoder = policy.backbone.vision[0].model
    for name, value in pretrained.state_dict().items():
        assert torch.equal(encoder.state_dict()[name], value), name
    assert config.backbone.vision_configs[0]["layer_norm_eps"] == 1e-3
    images = torch.rand(1, b.num_cameras, 3, b.image_size, b.image_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = policy.backbone.encode_images(images)
    save_policy(policy, tmp_path / "ckpt")
    shutil.rmtree(tmp_path / "siglip")  # the original weights are gone: the checkpoint must suffice
    loaded = load_policy(tmp_path / "ckpt")
    assert loaded.backbone.vision[0].model.config.layer_norm_eps == 1e-3
    with torch.no_grad():
        assert torch.equal(loaded.backbone.encode_images(images), before)


def test_pretrained_vision_encoder_of_other_sizes_is_refused(tmp_path) -> None:
    from rd_vla_ros.model.config import make_config

    b = make_config("tiny").backbone
    _siglip(b, image_size=32).save_pretrained(tmp_path / "small")
    with pytest.raises(ValueError, match=r"image_size 32 differs from BackboneConfig.image_size 64"):
        VisionLanguageBackbone(make_config("tiny", vision_paths=[str(tmp_path / "small")]).backbone)
    with pytest.raises(ValueError, match="one entry per vision encoder"):
        make_config("tiny", vision_paths=["a", "b"])
    with pytest.raises(OSError):  # a path that is not there is never looked up on a hub
        VisionLanguageBackbone(make_config("tiny", vision_paths=[str(tmp_path / "missing")]).backbone)
