"""The sampling rows of ``make bench`` (Alg. 2): texture sampling, expansion and SDXL text-to-image.

Each runs at its preset's settings (``configs/texture.yaml``, ``expand.yaml``, ``t2i.yaml``) by
the engine or by the literal baselines, and is counted per DDIM step: expansion's windows, and
the reference passes a step runs — the engine's promise is one per step whatever the windows and
AD iterations, which is what makes expansion's time linear in the number of windows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING

import torch

from adcli.engine.attention import FeatureStore
from adcli.engine.backend import Backend
from adcli.engine.config import ExpansionConfig, SamplingConfig
from adcli.engine.features import Guide
from adcli.engine.multidiffusion import expand_by_sampling, windows
from adcli.engine.sampler import distill_by_sampling, negative_conditioning, text_denoiser
from benchmarks.baseline import literal_algorithm2, literal_multidiffusion
from benchmarks.baseline_flow import literal_flow_sampling

if TYPE_CHECKING:
    from benchmarks.cases import Case

T2I_LR, T2I_GUIDANCE, T2I_PROMPT = 0.015, 7.0, "a watercolor painting of a lighthouse"
WINDOW_BATCH = 4


def sampling_workload(
    backend: Backend, case: Case, reference: torch.Tensor, layers: Sequence[int], lr: float
) -> Callable[[int], object]:
    """``run(n)``: ``n`` DDIM steps with ``case.ad_iterations`` AD iterations after each, from a
    fresh seed each run: texture sampling (no prompt), expansion (MultiDiffusion windows, the
    ``reference`` one window big) or SDXL text-to-image (prompt, CFG, AdaIN); latents only, no decode."""
    window = backend.native_size()[0] // backend.vae_scale_factor
    t2i = case.task == "t2i"
    config = SamplingConfig(1, case.ad_iterations, T2I_LR if t2i else lr, layers, adain=t2i)
    flow = backend.prediction.name == "flow"
    if t2i and flow:  # FLUX.1/SD3.5: their preset's settings (layers, lr, guidance)
        return _transformer_t2i(backend, case)
    if t2i:
        negative = negative_conditioning(backend, "")
        denoise = text_denoiser(backend, backend.encode_prompts([T2I_PROMPT]), negative, T2I_GUIDANCE)
    else:
        denoise = text_denoiser(backend, backend.encode_prompts([""]))
    seed = lambda: torch.Generator("cpu").manual_seed(0)  # noqa: E731
    if case.task == "expand":
        expansion = ExpansionConfig(**vars(config), window=window, stride=case.stride, window_batch=WINDOW_BATCH)
    if case.task == "expand" and case.impl == "baseline":
        return lambda n: literal_multidiffusion(
            backend, denoise, reference, replace(expansion, steps=n), size=case.pixels, generator=seed()
        )
    if case.task == "expand":
        return lambda n: expand_by_sampling(
            backend, Guide(reference), replace(expansion, steps=n), size=case.pixels, generator=seed()
        )
    if case.impl == "baseline":
        return lambda n: literal_algorithm2(
            backend, denoise, reference, replace(config, steps=n), size=case.pixels, generator=seed()
        )
    return lambda n: distill_by_sampling(
        backend, denoise, Guide(reference), replace(config, steps=n), size=case.pixels, generator=seed()
    )


def _transformer_t2i(backend: Backend, case: Case) -> Callable[[int], object]:
    """FLUX.1/SD3.5 t2i at the preset's settings, by the engine or the literal flow-matching loop."""
    from benchmarks.transformer_rows import t2i_settings

    preset = t2i_settings(backend.arch.name)
    config = SamplingConfig(1, case.ad_iterations, preset["lr"], tuple(preset["layers"]), adain=preset["adain"])
    negative = negative_conditioning(backend, "") if backend.arch.classifier_free_guidance else None
    denoise = text_denoiser(backend, backend.encode_prompts([T2I_PROMPT]), negative, preset["guidance"])
    side = backend.vae_scale_factor
    reference = torch.randn(1, backend.arch.latent_channels, case.size // side, case.pixels[1] // side,
                            generator=torch.Generator().manual_seed(1)).to(backend.device)
    seed = lambda: torch.Generator("cpu").manual_seed(0)  # noqa: E731
    sample = literal_flow_sampling if case.impl == "baseline" else _engine_sampling
    return lambda n: sample(backend, denoise, reference, replace(config, steps=n), size=case.pixels, generator=seed())


def _engine_sampling(backend, denoise, reference, config, *, size, generator):
    return distill_by_sampling(backend, denoise, Guide(reference), config, size=size, generator=generator)


def window_count(backend: Backend, case: Case) -> int | None:
    """MultiDiffusion windows of an expansion row (None for the other rows)."""
    if case.task != "expand":
        return None
    width, height = (side // backend.vae_scale_factor for side in case.pixels)
    return len(windows(height, width, backend.native_size()[0] // backend.vae_scale_factor, case.stride))


@contextmanager
def counting_reference_passes(denoiser: torch.nn.Module, found: list) -> Iterator[None]:
    """Record each denoiser pass that reads attention features without gradient: a reference pass.

    Both the engine and the baselines install the capture processors only around their AD
    work, so denoising passes (also without gradient) are not counted; target passes need a
    gradient. A pass over a batch of references counts once.
    """

    def seen(module: torch.nn.Module, args: tuple) -> None:
        # a capture processor (of any architecture) records into a FeatureStore
        if not torch.is_grad_enabled() and any(
            isinstance(getattr(p, "store", None), FeatureStore) for p in module.attn_processors.values()
        ):
            found.append(1)

    handle = denoiser.register_forward_pre_hook(seen)
    try:
        yield
    finally:
        handle.remove()
