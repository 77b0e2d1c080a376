"""A Backend over a user's own diffusers pipeline: shared modules, and the pipeline left as it was.

The SD1.5 pipeline (tests/support/pipelines.py) has widths, head counts and depth that differ from
the built-in tiny model, and a non-DDIM scheduler, as a user's own pipeline would.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionXLPipeline
from diffusers.models.attention_processor import AttnProcessor

from adcli.engine.distill import Guide, distill_by_optimization
from adcli.engine.lowvram import enable_low_vram
from adcli.engine.pipes import backend_from_pipe, borrowed
from adcli.engine.tiling import seamless
from adcli.engine.tiny import build_tiny_components
from adcli.engine.vae_finetune import finetune_decoder
from adcli.errors import ModelLoadError
from tests.support.pipelines import own_sd15_pipeline

def pipeline_output(pipe) -> np.ndarray:
    return pipe("a red cat", num_inference_steps=2, height=64, width=64, output_type="np",
                generator=torch.Generator().manual_seed(0)).images


def fingerprint(pipe) -> dict:
    """What a run could leave changed, per module of the pipeline."""
    state = {}
    for part in ("unet", "vae", "text_encoder", "text_encoder_2"):
        module = getattr(pipe, part, None)
        if module is None:
            continue
        state[part] = {
            "processors": {k: id(v) for k, v in getattr(module, "attn_processors", {}).items()},
            "grad": [(n, p.requires_grad, p.grad is None) for n, p in module.named_parameters()],
            "modes": [(n, m.training) for n, m in module.named_modules()],
            "placement": [(n, t.device, t.dtype) for n, t in [*module.named_parameters(), *module.named_buffers()]],
            "checkpointing": [(n, getattr(m, "gradient_checkpointing", None)) for n, m in module.named_modules()],
            "paddings": [(n, m.padding, m.padding_mode) for n, m in module.named_modules() if isinstance(m, torch.nn.Conv2d)],
            "hooks": sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in module.modules()),
            "tiling": (getattr(module, "use_tiling", None), getattr(module, "tile_sample_min_size", None)),
        }
    return state


def run_ad(backend, iterations=3, tile="xy"):
    """An AD optimization through the backend, with tiling and --low-vram switched on and never undone."""
    pixels = torch.rand((1, 3, 64, 64), generator=torch.Generator().manual_seed(1)) * 2 - 1
    reference = backend.encode_images(pixels)
    enable_low_vram(backend)  # a run that owns its model never restores these; borrowed must
    with seamless([backend.denoiser, backend.vae.decoder], tile):
        latents = distill_by_optimization(
            backend, backend.latent_noise((64, 64), torch.Generator().manual_seed(2)), Guide(reference),
            layers=[-2, -1], iterations=iterations, lr=0.05,
        )
    return backend.decode_latents(latents)


def test_a_run_on_a_users_pipeline_leaves_it_as_it_was():
    pipe = own_sd15_pipeline()
    assert next(pipe.unet.parameters()).requires_grad  # as diffusers leaves a pipeline built in code
    before, state = pipeline_output(pipe), fingerprint(pipe)
    backend = backend_from_pipe(pipe)
    assert backend.denoiser is pipe.unet and backend.vae is pipe.vae and backend.text_encoders == [pipe.text_encoder]
    assert backend.arch.name == "sd15" and backend.shared and backend.scheduler_config == dict(pipe.scheduler.config)
    with borrowed(backend):
        image = run_ad(backend)
        # more of what a run might leave behind: train mode, a hook, a processor, a cast
        pipe.unet.train()
        pipe.vae.register_forward_pre_hook(lambda module, args: None)
        pipe.unet.set_attn_processor(AttnProcessor())
        pipe.text_encoder.to(torch.float64)
        assert not next(pipe.unet.parameters()).requires_grad
    assert image.shape == (1, 3, 64, 64) and torch.isfinite(image).all()
    assert fingerprint(pipe) == state
    np.testing.assert_array_equal(pipeline_output(pipe), before)


def test_the_pipeline_is_restored_when_a_run_fails():
    pipe = own_sd15_pipeline()
    state = fingerprint(pipe)
    backend = backend_from_pipe(pipe)
    with pytest.raises(RuntimeError, match="stopped"), borrowed(backend):
        enable_low_vram(backend)
        with seamless([backend.denoiser], "x"):
            raise RuntimeError("stopped")
    assert fingerprint(pipe) == state


def test_keep_weights_undoes_a_vae_finetune():
    pipe = own_sd15_pipeline()
    before = {k: v.clone() for k, v in pipe.vae.state_dict().items()}
    backend = backend_from_pipe(pipe)
    with borrowed(backend, keep_weights=[backend.vae.decoder]):
        image = torch.rand((1, 3, 32, 32), generator=torch.Generator().manual_seed(3)) * 2 - 1
        finetune_decoder(backend.vae, [image], steps=2, lr=1e-2, crop_size=32, batch_size=1, seed=0)
        assert not torch.equal(backend.vae.decoder.conv_out.weight, before["decoder.conv_out.weight"])
    after = pipe.vae.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())


def test_an_sdxl_pipeline():
    pipe = StableDiffusionXLPipeline(**build_tiny_components("tiny-sdxl"))
    pipe.set_progress_bar_config(disable=True)
    pipe.unet.requires_grad_(True)
    before, state = pipeline_output(pipe), fingerprint(pipe)
    backend = backend_from_pipe(pipe)
    assert backend.arch.name == "sdxl" and backend.text_encoders == [pipe.text_encoder, pipe.text_encoder_2]
    with borrowed(backend):
        run_ad(backend, iterations=2, tile="x")
    assert fingerprint(pipe) == state
    np.testing.assert_array_equal(pipeline_output(pipe), before)


def test_a_pipeline_without_a_unet_is_a_one_line_error():
    class NotAPipeline:
        unet = None

    with pytest.raises(ModelLoadError, match="StableDiffusionPipeline"):
        backend_from_pipe(NotAPipeline())
