"""`make bench`'s literal AD-guided flow-matching loop gives the engine's losses and latents on
tiny-FLUX (embedded guidance) and tiny-SD3 (classifier-free guidance), with packed AdaIN."""

from __future__ import annotations

import pytest
import torch

from adcli.engine.config import SamplingConfig
from adcli.engine.features import Guide
from adcli.engine.models import load_backend
from adcli.engine.sampler import distill_by_sampling, negative_conditioning, text_denoiser
from benchmarks.baseline_flow import literal_flow_sampling, pack, packed_adain, unpack

LAYERS = (-7, -6, -5, -4, -3, -2, -1)



def test_packed_adain_matches_each_packed_channel_to_the_reference():
    """Each (channel, dy, dx) of the 2×2 patches gets the reference's mean and unbiased std over tokens."""
    x = torch.randn(1, 2, 4, 6, generator=torch.Generator().manual_seed(0)) * 3 + 1
    reference = torch.randn(1, 2, 4, 6, generator=torch.Generator().manual_seed(1)) * 0.5 - 2
    out = packed_adain(x, reference, eps=0.0)
    torch.testing.assert_close(unpack(pack(x), 4, 6), x)
    # packed channel (c=1, dy=0, dx=1): every other pixel of channel 1, rows 0, 2 and columns 1, 3, 5
    picked = lambda t: t[0, 1, 0::2, 1::2].reshape(-1)  # noqa: E731
    assert picked(out).mean().item() == pytest.approx(picked(reference).mean().item(), abs=1e-5)
    assert picked(out).std().item() == pytest.approx(picked(reference).std().item(), rel=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["tiny-flux", "tiny-sd3"])
def test_literal_flow_sampling_gives_the_engines_losses_and_latents(model):
    backend = load_backend(model, device=torch.device("cpu"), dtype=torch.float32)
    prompt = backend.encode_prompts(["a cat"])
    if backend.arch.classifier_free_guidance:
        denoise = text_denoiser(backend, prompt, negative_conditioning(backend, ""), 4.5)
    else:
        denoise = text_denoiser(backend, prompt, None, 3.5)  # FLUX.1-dev: embedded guidance
    reference = torch.randn(1, 16, 8, 8, generator=torch.Generator().manual_seed(1))
    config = SamplingConfig(steps=3, ad_iterations=2, lr=0.01, layers=LAYERS, adain=True)
    expected, baseline = literal_flow_sampling(
        backend, denoise, reference, config, size=(64, 64), generator=torch.Generator().manual_seed(4)
    )
    engine = []
    actual = distill_by_sampling(
        backend, denoise, Guide(reference), config, size=(64, 64), generator=torch.Generator().manual_seed(4),
        callback=lambda info: engine.append(info["loss"]) if info["ad_iteration"] == 2 else None,
    )
    assert [len(step) for step in baseline] == [2, 2, 2] and all(x > 0 for step in baseline for x in step)
    assert [step[-1] for step in baseline] == pytest.approx(engine, rel=1e-5)
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)
