"""Tiny random-weight models built in code, for tests, CI and demos with no download.

Each architecture builds its own (``Architecture.build_tiny``, e.g. ``engine/archs/tiny_unets.py``)
from the shared pieces here: a character-level CLIP tokenizer, a small CLIP text config and an
SD-style VAE. They keep the real block layouts, so that layer selection, conditioning and every
code path behave as with the real weights; only the widths shrink. Their pictures are noise.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL
from transformers import CLIPTextConfig, CLIPTokenizer

from adcli.errors import ModelLoadError

TINY_SEED = 0
TEXT_WIDTH = 32
# SDXL's second encoder is wider than its first (1280 vs 768); diffusers tells them apart by width.
TEXT_WIDTH_2 = 48
MAX_TOKENS = 77


def _byte_alphabet() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for raw bytes (as GPT-2/CLIP define them)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


def tiny_tokenizer() -> CLIPTokenizer:
    """A character-level CLIP tokenizer: every byte and byte+</w> is a token, no merges."""
    alphabet = _byte_alphabet()
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for symbol in alphabet + [a + "</w>" for a in alphabet]:
        vocab.setdefault(symbol, len(vocab))
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[])
    tokenizer.model_max_length = MAX_TOKENS
    return tokenizer


def text_config(width: int) -> CLIPTextConfig:
    """A two-layer CLIP text encoder ``width`` wide (with a projection of the same width)."""
    return CLIPTextConfig(
        vocab_size=1024,
        hidden_size=width,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=MAX_TOKENS,
        projection_dim=width,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )


def tiny_vae(latent_channels: int = 4, **config) -> AutoencoderKL:
    """Four blocks, so one latent pixel is 8×8 image pixels, as in the real VAEs; ``config`` overrides
    the SD VAE's settings (FLUX's and SD3's: 16 channels, their factors, no quant convs)."""
    return AutoencoderKL(**{
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ("DownEncoderBlock2D",) * 4,
        "up_block_types": ("UpDecoderBlock2D",) * 4,
        "block_out_channels": (8, 16, 16, 16),
        "layers_per_block": 1,
        "latent_channels": latent_channels,
        "norm_num_groups": 8,
        "sample_size": 64,
        "scaling_factor": 0.18215,
        **config,
    })


def frozen(components: dict) -> dict:
    """Every module of ``components`` in eval mode with gradients off (as loading leaves real weights)."""
    for module in components.values():
        if isinstance(module, torch.nn.Module):
            module.eval().requires_grad_(False)
    return components


def build_tiny_components(name: str = "tiny") -> dict:
    """The components of the tiny model ``name`` (``tiny``, ``tiny-sdxl``, …: see the registry)."""
    from adcli.engine import archs

    arch = archs.tiny_model_arch(name)
    if arch is None:
        raise ModelLoadError(f"no tiny model {name!r}: expected one of {', '.join(archs.tiny_models())}")
    return arch.build_tiny(name)


def tiny_pipeline(name: str = "tiny"):
    """The diffusers pipeline (e.g. ``StableDiffusionPipeline``) of the tiny model ``name``: a stand-in
    for a pipeline loaded with ``from_pretrained``, for examples and tests that wrap a user's own
    pipeline (``adcli.from_pipe``)."""
    from adcli.engine import archs

    arch = archs.tiny_model_arch(name)
    if arch is None:
        raise ModelLoadError(f"no tiny model {name!r}: expected one of {', '.join(archs.tiny_models())}")
    pipe = arch.pipeline(arch.build_tiny(name))
    pipe.set_progress_bar_config(disable=True)
    return pipe
