"""Attention Distillation on joint attention (tiny FLUX.1 dev and schnell, tiny SD3.5): the loss over
all query rows, its gradient on the latent, Adam lowering it, references of another size."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from adcli.engine.archs.flow import adain_tokens, add_flow_noise, flux_image_ids, pack_latents
from adcli.engine.archs.flux_conditioning import encode_flux_prompts, flux_forward
from adcli.engine.archs.joint_attention import (
    FluxCapture,
    SD3Capture,
    flux_attention_layers,
    sd3_attention_layers,
)
from adcli.engine.archs.sd3_conditioning import encode_sd3_prompts, sd3_forward
from adcli.engine.archs.tiny_transformers import build_tiny_flux_components, build_tiny_sd3_components
from adcli.engine.attention import FeaturesComplete, FeatureStore, select_layers
from adcli.engine.features import distillation_loss

LAST_SEVEN = tuple(range(-7, 0))  # the default AD layers on both families (configs' by_arch)


def joint_distillation_loss(target, reference, content=None, content_weight=0.0):
    """The engine's loss, summed over layers (a batch of one: the mean over items is the item's)."""
    return distillation_loss(target, reference, content, content_weight)

T5_TOKENS = 8
SIGMA = torch.tensor(0.6)


class Features:
    """The AD passes of one run: the empty prompt, guidance 1, stop after the last selected layer."""

    def __init__(self, transformer, capture_class, layers, forward):
        self.positions = select_layers(len(capture_class.layers(transformer)), layers)
        self.store = FeatureStore()
        self.capture = capture_class(transformer, self.positions, self.store)
        self.forward = forward

    def __call__(self, latents, grid):
        self.store.clear()
        self.store.stop_after = max(self.positions)
        try:
            self.forward(latents, grid)
        except FeaturesComplete:
            pass
        finally:
            self.store.stop_after = None
        features = dict(self.store.layers)
        self.store.clear()
        return features


def flux_features(variant, layers=LAST_SEVEN):
    parts = build_tiny_flux_components(variant)
    empty = encode_flux_prompts(parts["tokenizer"], parts["text_encoder"], parts["tokenizer_2"],
                                parts["text_encoder_2"], [""], T5_TOKENS)
    config = parts["scheduler"].config

    def forward(latents, grid):  # packed (B, h·w, 64)
        return flux_forward(parts["transformer"], latents, SIGMA, empty, flux_image_ids(grid), 1.0, config)

    return Features(parts["transformer"], FluxCapture, layers, forward)


def sd3_features(layers=LAST_SEVEN):
    parts = build_tiny_sd3_components()
    names = ("tokenizer", "tokenizer_2", "tokenizer_3"), ("text_encoder", "text_encoder_2", "text_encoder_3")
    empty = encode_sd3_prompts([parts[n] for n in names[0]], [parts[n] for n in names[1]], [""], T5_TOKENS)
    config = parts["scheduler"].config

    def forward(latents, grid):  # (B, 16, 2h, 2w)
        return sd3_forward(parts["transformer"], latents, SIGMA, empty, config)

    return Features(parts["transformer"], SD3Capture, layers, forward)


def latent(grid, seed, packed):
    x = torch.randn(1, 16, grid[0] * 2, grid[1] * 2, generator=torch.Generator().manual_seed(seed))
    return pack_latents(x) if packed else x


def distill(features, target, reference, grids, iterations=4, lr=0.05):
    """Reference features once, then Adam on the target latent; the loss before each step."""
    target_grid, reference_grid = grids
    with features.capture.installed():
        with torch.no_grad():
            ref = features(reference, reference_grid)
        z = target.clone().requires_grad_(True)
        optimizer = torch.optim.Adam([z], lr=lr)
        losses, gradients = [], []
        for _ in range(iterations):
            optimizer.zero_grad()
            loss = joint_distillation_loss(features(z, target_grid), ref)
            loss.backward()
            losses.append(loss.item())
            gradients.append(z.grad.detach().clone())
            optimizer.step()
    return losses, gradients, ref


@pytest.mark.parametrize("variant", ["dev", "schnell"])
def test_flux_ad_loss_falls_and_reaches_the_latent(variant):
    features = flux_features(variant)
    losses, gradients, _ = distill(features, latent((4, 4), 1, True), latent((4, 4), 2, True), ((4, 4), (4, 4)))
    assert gradients[0].abs().sum() > 0 and torch.isfinite(gradients[0]).all()
    assert losses[-1] < losses[0]


def test_flux_reference_of_another_size():
    """A 4×4-token target distils from a 3×5-token reference: its keys rotated with its own grid."""
    features = flux_features("dev")
    losses, gradients, ref = distill(features, latent((4, 4), 1, True), latent((3, 5), 2, True), ((4, 4), (3, 5)))
    layer = ref[features.positions[-1]]
    assert layer.grid == (3, 5) and layer.k.shape[2] == T5_TOKENS + 15
    assert gradients[0].abs().sum() > 0 and losses[-1] < losses[0]


def test_loss_is_l1_to_reference_attention_over_every_row_text_included():
    features = flux_features("dev", layers=[-1, 30])
    with features.capture.installed(), torch.no_grad():
        target, ref = features(latent((4, 4), 1, True), (4, 4)), features(latent((3, 5), 2, True), (3, 5))
    expected = sum(
        (target[p].out - F.scaled_dot_product_attention(target[p].q, ref[p].k, ref[p].v)).abs().mean()
        for p in (30, 56)
    )
    assert sorted(target) == [30, 56]
    assert torch.allclose(joint_distillation_loss(target, ref), expected)
    image_rows_only = sum(
        (target[p].out - F.scaled_dot_product_attention(target[p].q, ref[p].k, ref[p].v))[:, :, target[p].image].abs().mean()
        for p in (30, 56)
    )
    assert not torch.allclose(joint_distillation_loss(target, ref), image_rows_only)
    assert joint_distillation_loss(target, target).item() == pytest.approx(0.0, abs=1e-6)


def test_content_loss_compares_image_queries_only():
    features = flux_features("dev", layers=[-1])
    with features.capture.installed(), torch.no_grad():
        target, other = features(latent((4, 4), 1, True), (4, 4)), features(latent((4, 4), 3, True), (4, 4))
    plain = joint_distillation_loss(target, other)
    with_content = joint_distillation_loss(target, other, content=other, content_weight=0.5)
    layer, content = target[56], other[56]
    expected = 0.5 * (layer.q[:, :, layer.image] - content.q[:, :, content.image]).abs().mean()
    assert torch.allclose(with_content - plain, expected)


def test_sd3_ad_with_a_reference_of_another_size_including_image_only_layers():
    features = sd3_features(layers=[25, -3, -2, -1])  # block 12's attn2 and the last three joint attentions
    modules = [sd3_attention_layers(features.capture.transformer)[p] for p in features.positions]
    assert [layer.added_kv_proj_dim is None for layer in modules] == [True, False, False, False]
    losses, gradients, ref = distill(features, latent((4, 4), 1, False), latent((3, 5), 2, False), ((4, 4), (3, 5)))
    assert ref[25].text.stop - ref[25].text.start == 0 and ref[25].k.shape[2] == 15  # image-only attn2
    assert ref[36].grid == (3, 5)
    assert gradients[0].abs().sum() > 0 and losses[-1] < losses[0]


def test_one_ad_sampling_step_on_schnell():
    """Noise the reference to σ, AdaIN the packed tokens to it, then AD iterations: schnell gets no guidance."""
    features = flux_features("schnell", layers=range(-2, 0))
    target, reference = latent((4, 4), 1, True), latent((4, 4), 2, True)
    noise = torch.randn(reference.shape, generator=torch.Generator().manual_seed(9))
    noised = add_flow_noise(reference, noise, SIGMA)
    start = adain_tokens(target, noised)
    assert torch.allclose(start.mean(1), noised.mean(1).expand_as(start.mean(1)), atol=1e-5)
    losses, _, _ = distill(features, start, noised, ((4, 4), (4, 4)), iterations=3, lr=0.01)
    assert losses[-1] < losses[0]
    assert len(flux_attention_layers(features.capture.transformer)) == 57
