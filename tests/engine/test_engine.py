"""Attention capture, layer selection and the Algorithm 1 loop on the tiny models."""

from __future__ import annotations

import pytest
import torch

from adcli.engine.archs.unet_attention import capture, self_attention_names
from adcli.engine.attention import FeatureStore, select_layers
from adcli.engine.distill import distill_by_optimization
from adcli.engine.features import FeatureExtractor, Guide, distillation_loss, split_features
from adcli.errors import AdcliError


def forward_call_order(backend) -> list[str]:
    """The attn1 layers in the order a real forward pass calls them (probed with hooks)."""
    order: list[str] = []
    hooks = [
        module.register_forward_pre_hook(lambda m, a, name=name: order.append(name))
        for name, module in backend.denoiser.named_modules()
        if name.endswith("attn1")
    ]
    try:
        latents = torch.randn(1, 4, 8, 8)
        inputs = backend.model_inputs(backend.encode_prompts([""]), 1, (8, 8))
        with torch.no_grad():
            backend.denoiser(latents, torch.tensor([10]), **inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return [f"{name}.processor" for name in order]


@pytest.mark.parametrize("fixture, count, last_six", [
    ("tiny_sd15", 16, list(range(10, 16))),
    ("tiny_sdxl", 70, list(range(64, 70))),
])
def test_self_attention_layers_are_in_forward_order(request, fixture, count, last_six):
    backend = request.getfixturevalue(fixture)
    names = self_attention_names(backend.denoiser)
    assert len(names) == count
    assert names == forward_call_order(backend)
    assert select_layers(len(names), range(-6, 0)) == last_six
    assert all("attn2" not in name for name in names)


def test_last_six_layers_are_the_highest_resolution_decoder_blocks(tiny_sd15):
    names = self_attention_names(tiny_sd15.denoiser)
    chosen = [names[i] for i in select_layers(len(names), [-6, -5, -4, -3, -2, -1])]
    assert all(name.startswith(("up_blocks.2.", "up_blocks.3.")) for name in chosen)


def test_selecting_a_missing_layer_fails_loudly(tiny_sd15):
    with pytest.raises(AdcliError, match="16 self-attention layers"):
        select_layers(len(self_attention_names(tiny_sd15.denoiser)), [16])
    with pytest.raises(AdcliError, match="-17"):
        select_layers(16, [-17])


def test_capture_records_per_head_tensors_and_restores_processors(tiny_sd15):
    unet = tiny_sd15.denoiser
    before = dict(unet.attn_processors)
    store = FeatureStore()
    positions = select_layers(len(self_attention_names(unet)), [0, 15])
    latents = torch.randn(2, 4, 8, 12)
    inputs = tiny_sd15.model_inputs(tiny_sd15.encode_prompts([""]), 2, (8, 12))
    with torch.no_grad():
        plain = unet(latents, torch.tensor([500, 500]), **inputs).sample
        with capture(unet, positions, store):
            captured = unet(latents, torch.tensor([500, 500]), **inputs).sample
    assert torch.allclose(plain, captured, atol=1e-5)  # capturing changes nothing
    assert sorted(store.layers) == [0, 15]
    first = store.layers[0]
    heads = unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1.heads
    assert first.q.shape[:3] == (2, heads, 8 * 12) and first.grid == (8, 12)
    assert store.layers[15].grid == (8, 12)
    after = dict(unet.attn_processors)
    assert after.keys() == before.keys()
    assert all(type(after[k]) is type(before[k]) for k in before)


def test_processors_are_restored_when_the_pass_fails(tiny_sd15):
    unet = tiny_sd15.denoiser
    before = {k: type(v) for k, v in unet.attn_processors.items()}
    with pytest.raises(RuntimeError):
        with capture(unet, [3], FeatureStore()):
            unet(torch.randn(1, 3, 8, 8), torch.tensor([1]), encoder_hidden_states=torch.randn(1, 77, 32))
    assert {k: type(v) for k, v in unet.attn_processors.items()} == before


def test_early_stop_gives_the_same_features_as_a_full_pass(tiny_sdxl):
    extract = FeatureExtractor(tiny_sdxl, [-6, -1])
    latents = torch.randn(1, 4, 8, 8)
    with extract.installed(), torch.no_grad():
        stopped = extract(latents, torch.tensor(300))
        extract.store.stop_after = None
        full = extract(latents, torch.tensor(300))
    for position in extract.positions:
        assert torch.equal(stopped[position].out, full[position].out)


def test_batched_reference_and_content_pass_equals_separate_passes(tiny_sd15):
    extract = FeatureExtractor(tiny_sd15, range(-6, 0))
    ref, content = torch.randn(2, 4, 8, 8), torch.randn(1, 4, 8, 8)
    with extract.installed(), torch.no_grad():
        together = split_features(extract(torch.cat([ref, content]), torch.tensor(400)), [2, 1])
        alone = [extract(ref, torch.tensor(400)), extract(content, torch.tensor(400))]
    for joint, single in zip(together, alone):
        for position in extract.positions:
            assert torch.allclose(joint[position].k, single[position].k, atol=1e-5)


def test_optimization_lowers_the_ad_loss(tiny_sd15):
    reference = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    start = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    extract = FeatureExtractor(tiny_sd15, range(-6, 0))
    t = torch.tensor(501)

    def loss_at(latents):
        with extract.installed(), torch.no_grad():
            return distillation_loss(extract(latents, t), extract(reference, t)).item()

    losses = []
    result = distill_by_optimization(
        tiny_sd15, start, Guide(reference), layers=range(-6, 0), iterations=15, lr=0.05,
        report_every=1, callback=lambda info: losses.append(info["loss"]),
    )
    assert losses[-1] < losses[0]
    assert loss_at(result) < loss_at(start)


def test_optimization_is_deterministic_and_lambda_weighs_the_content(tiny_sd15):
    """From the content latent (style transfer's start): the same run twice is bit-identical, and λ
    decides how far the latent moves from the content (the content loss pulls it back)."""
    generator = torch.Generator().manual_seed(0)
    reference, start = torch.randn(1, 4, 8, 8, generator=generator), torch.randn(1, 4, 8, 8, generator=generator)

    def run(weight: float) -> torch.Tensor:
        guide = Guide(reference, content=start, content_weight=weight)
        return distill_by_optimization(tiny_sd15, start, guide, layers=[-1, -2], iterations=6, lr=0.05)

    runs = [run(0.25) for _ in range(2)]
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], start)
    results = {weight: run(weight) for weight in (0.0, 50.0)}
    assert not torch.equal(results[0.0], runs[0])
    distance = {weight: float((z - start).abs().mean()) for weight, z in results.items()}
    assert distance[50.0] < distance[0.0]  # a heavy content term keeps the latent nearer the content
