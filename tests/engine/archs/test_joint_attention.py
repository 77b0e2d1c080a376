"""Joint-attention capture on the tiny FLUX.1 and SD3.5 transformers: outputs unchanged, the right
tensors, grids and text positions recorded, layers counted in forward order, the early stop."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from adcli.engine.archs.flow import flux_image_ids, pack_latents
from adcli.engine.archs.flux_conditioning import encode_flux_prompts, flux_forward
from adcli.engine.archs.joint_attention import (
    FluxCapture,
    SD3Capture,
    flux_attention_layers,
    layer_names,
    sd3_attention_layers,
)
from adcli.engine.archs.sd3_conditioning import encode_sd3_prompts, sd3_forward
from adcli.engine.archs.tiny_transformers import build_tiny_flux_components, build_tiny_sd3_components
from adcli.engine.attention import FeaturesComplete, FeatureStore, select_layers
from adcli.errors import AdcliError

T5_TOKENS = 8
GRID = (4, 3)  # a non-square token grid: 64 × 48 px


@pytest.fixture(scope="module")
def flux():
    parts = build_tiny_flux_components("dev")
    prompt = encode_flux_prompts(parts["tokenizer"], parts["text_encoder"], parts["tokenizer_2"],
                                 parts["text_encoder_2"], ["a cat"], T5_TOKENS)
    latents = pack_latents(torch.randn(2, 16, GRID[0] * 2, GRID[1] * 2, generator=torch.Generator().manual_seed(0)))

    def run(latents=latents, ids=None):
        ids = flux_image_ids(GRID) if ids is None else ids
        return flux_forward(parts["transformer"], latents, torch.tensor(0.7), prompt, ids, 3.5, parts["scheduler"].config)

    return parts["transformer"], run


@pytest.fixture(scope="module")
def sd3():
    parts = build_tiny_sd3_components()
    names = ("tokenizer", "tokenizer_2", "tokenizer_3"), ("text_encoder", "text_encoder_2", "text_encoder_3")
    prompt = encode_sd3_prompts([parts[n] for n in names[0]], [parts[n] for n in names[1]], ["a cat"], T5_TOKENS)
    latents = torch.randn(2, 16, GRID[0] * 2, GRID[1] * 2, generator=torch.Generator().manual_seed(0))

    def run(latents=latents):
        return sd3_forward(parts["transformer"], latents, torch.tensor(0.7), prompt, parts["scheduler"].config)

    return parts["transformer"], run


def captured(capture_class, transformer, run, positions, stop=False):
    store = FeatureStore()
    capture = capture_class(transformer, positions, store)
    output = None
    with capture.installed():
        store.stop_after = max(positions) if stop else None
        try:
            output = run()
        except FeaturesComplete:
            pass
    return output, dict(store.layers)


def test_flux_layers_in_forward_order(flux):
    transformer, _ = flux
    layers = flux_attention_layers(transformer)
    assert len(layers) == 57
    names = layer_names(transformer, layers)
    assert names[0] == "transformer_blocks.0.attn" and names[18] == "transformer_blocks.18.attn"
    assert names[19] == "single_transformer_blocks.0.attn" and names[56] == "single_transformer_blocks.37.attn"
    assert select_layers(57, range(-7, 0)) == list(range(50, 57))  # the paper's FLUX default, "50–57"
    with pytest.raises(AdcliError, match="57 attention layers"):
        select_layers(57, [57], "attention")


def test_sd3_layers_count_medium_image_only_attention_after_its_joint_one(sd3):
    transformer, _ = sd3
    layers = sd3_attention_layers(transformer)
    assert len(layers) == 24 + 13
    names = layer_names(transformer, layers)
    assert names[:4] == ["transformer_blocks.0.attn", "transformer_blocks.0.attn2",
                         "transformer_blocks.1.attn", "transformer_blocks.1.attn2"]
    assert names[25] == "transformer_blocks.12.attn2" and names[26] == "transformer_blocks.13.attn"
    assert names[-7:] == [f"transformer_blocks.{i}.attn" for i in range(17, 24)]


def test_flux_capture_leaves_the_output_unchanged_and_restores_processors(flux):
    transformer, run = flux
    originals = [layer.processor for layer in flux_attention_layers(transformer)]
    with torch.no_grad():
        expected = run()
        output, layers = captured(FluxCapture, transformer, run, range(57))
    assert torch.equal(output, expected)
    assert sorted(layers) == list(range(57))
    assert [layer.processor for layer in flux_attention_layers(transformer)] == originals


def test_flux_capture_records_the_joint_sequence(flux):
    transformer, run = flux
    with torch.no_grad():
        _, layers = captured(FluxCapture, transformer, run, [0, 18, 19, 56])
    image_tokens = GRID[0] * GRID[1]
    for position in (0, 18, 19, 56):  # double blocks see the streams apart, single blocks joined
        layer = layers[position]
        assert layer.q.shape == layer.k.shape == layer.v.shape == layer.out.shape == (2, 2, T5_TOKENS + image_tokens, 16)
        assert layer.grid == GRID
        assert layer.text == slice(0, T5_TOKENS) and layer.image == slice(T5_TOKENS, T5_TOKENS + image_tokens)
        assert torch.allclose(layer.out, F.scaled_dot_product_attention(layer.q, layer.k, layer.v), atol=1e-6)


def test_flux_features_are_taken_after_qk_norm_and_rope(flux):
    """In the first block q and k depend on the positions through RoPE only: moving the image grid
    rotates the image rows and leaves the text rows (ids zero: unrotated) as they were. Rotations
    keep each row's norm, which the RMS-norm (unit weights) made √D."""
    transformer, run = flux
    with torch.no_grad():
        _, here = captured(FluxCapture, transformer, run, [0])
        _, moved = captured(FluxCapture, transformer, lambda: run(ids=flux_image_ids(GRID, origin=(5, 7))), [0])
    a, b = here[0], moved[0]
    text, image = a.text, a.image
    assert torch.equal(a.q[:, :, text], b.q[:, :, text]) and torch.equal(a.k[:, :, text], b.k[:, :, text])
    assert not torch.allclose(a.q[:, :, image], b.q[:, :, image])
    assert torch.allclose(a.k[:, :, image].norm(dim=-1), b.k[:, :, image].norm(dim=-1), atol=1e-5)
    assert torch.allclose(a.q.norm(dim=-1), torch.full_like(a.q[..., 0], 16**0.5), atol=1e-3)
    assert torch.equal(a.v, b.v)  # values are never rotated


def test_flux_early_stop_after_the_last_wanted_layer(flux):
    transformer, run = flux
    reached = []
    hook = transformer.single_transformer_blocks[1].register_forward_pre_hook(lambda *a: reached.append(1))
    try:
        with torch.no_grad():
            output, layers = captured(FluxCapture, transformer, run, [5, 19], stop=True)
    finally:
        hook.remove()
    assert output is None and sorted(layers) == [5, 19] and not reached


def test_sd3_capture_leaves_the_output_unchanged(sd3):
    transformer, run = sd3
    with torch.no_grad():
        expected = run()
        output, layers = captured(SD3Capture, transformer, run, range(37))
    assert torch.equal(output, expected) and sorted(layers) == list(range(37))


def test_sd3_capture_records_image_then_text_and_image_only_layers(sd3):
    transformer, run = sd3
    with torch.no_grad():
        _, layers = captured(SD3Capture, transformer, run, [0, 1, 36])
    image_tokens, text_tokens = GRID[0] * GRID[1], 77 + T5_TOKENS
    for position in (0, 36):  # joint: [image, text]
        layer = layers[position]
        assert layer.q.shape == layer.out.shape == (2, 2, image_tokens + text_tokens, 16)
        assert layer.image == slice(0, image_tokens) and layer.text == slice(image_tokens, image_tokens + text_tokens)
        assert layer.grid == GRID
    attn2 = layers[1]  # block 0's image-only attention
    assert attn2.q.shape == (2, 2, image_tokens, 16) and attn2.grid == GRID
    assert attn2.text == slice(image_tokens, image_tokens) and attn2.image == slice(0, image_tokens)
    assert torch.allclose(attn2.out, F.scaled_dot_product_attention(attn2.q, attn2.k, attn2.v), atol=1e-6)


def test_sd3_early_stop(sd3):
    transformer, run = sd3
    with torch.no_grad():
        output, layers = captured(SD3Capture, transformer, run, [3], stop=True)
    assert output is None and list(layers) == [3]
