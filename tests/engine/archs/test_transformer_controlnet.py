"""FLUX and SD3 ControlNets: tiny builders, the transformer keyword arguments from them, loading."""

from __future__ import annotations

import pytest
import torch

from adcli.engine.archs.tiny_transformers import build_tiny_flux_components, build_tiny_sd3_components
from adcli.engine.archs.transformer_controlnet import (
    check_controlnet_fits,
    flux_controlnet_kwargs,
    load_transformer_controlnet,
    sd3_controlnet_kwargs,
    tiny_flux_controlnet,
    tiny_sd3_controlnet,
)
from adcli.errors import ModelLoadError
from tests.support.transformer_inputs import inputs_for, run, wide_flux_transformer


@pytest.fixture(scope="module")
def flux():
    transformer = build_tiny_flux_components()["transformer"]
    return transformer, tiny_flux_controlnet(transformer)


@pytest.fixture(scope="module")
def sd3():
    transformer = build_tiny_sd3_components()["transformer"]
    return transformer, tiny_sd3_controlnet(transformer)


def control_for(inputs: dict) -> torch.Tensor:
    return torch.randn(inputs["hidden_states"].shape, generator=torch.Generator().manual_seed(9))


def flux_kwargs(controlnet, inputs, scale):
    with torch.no_grad():
        return flux_controlnet_kwargs(
            controlnet, latents=inputs["hidden_states"], control_latents=control_for(inputs), timestep=inputs["timestep"],
            guidance=inputs["guidance"], prompt_embeds=inputs["encoder_hidden_states"],
            pooled=inputs["pooled_projections"], text_ids=inputs["txt_ids"], image_ids=inputs["img_ids"], scale=scale,
        )


def sd3_kwargs(controlnet, inputs, scale):
    with torch.no_grad():
        return sd3_controlnet_kwargs(
            controlnet, latents=inputs["hidden_states"], control_latents=control_for(inputs), timestep=inputs["timestep"],
            prompt_embeds=inputs["encoder_hidden_states"], pooled=inputs["pooled_projections"], scale=scale,
        )


def test_flux_residuals_reach_double_and_single_blocks(flux):
    transformer, controlnet = flux
    inputs = inputs_for(transformer)
    kwargs = flux_kwargs(controlnet, inputs, 1.0)
    width = transformer.config.num_attention_heads * transformer.config.attention_head_dim
    assert [tuple(r.shape) for r in kwargs["controlnet_block_samples"]] == [(1, 16, width)] * 2
    assert [tuple(r.shape) for r in kwargs["controlnet_single_block_samples"]] == [(1, 16, width)] * 2
    plain = run(transformer, inputs)
    assert (run(transformer, inputs | kwargs) - plain).abs().max() > 1e-2
    singles_only = {**kwargs, "controlnet_block_samples": None}
    assert (run(transformer, inputs | singles_only) - plain).abs().max() > 1e-3  # each list matters on its own
    assert torch.equal(run(transformer, inputs | flux_kwargs(controlnet, inputs, 0.0)), plain)  # scale 0: no change


def test_sd3_residuals_reach_the_joint_blocks(sd3):
    transformer, controlnet = sd3
    inputs = inputs_for(transformer)
    kwargs = sd3_kwargs(controlnet, inputs, 1.0)
    assert list(kwargs) == ["block_controlnet_hidden_states"] and len(kwargs["block_controlnet_hidden_states"]) == 2
    plain = run(transformer, inputs)
    assert (run(transformer, inputs | kwargs) - plain).abs().max() > 1e-2
    assert torch.equal(run(transformer, inputs | sd3_kwargs(controlnet, inputs, 0.0)), plain)


def test_saved_controlnets_load_and_a_mismatch_is_refused(flux, sd3, tmp_path):
    transformer, controlnet = flux
    controlnet.save_pretrained(tmp_path / "flux-controlnet")
    loaded = load_transformer_controlnet("flux", str(tmp_path / "flux-controlnet"), dtype=torch.float32, local_only=True)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), controlnet.state_dict().values(), strict=True))
    check_controlnet_fits(loaded, transformer, "flux-controlnet")
    with pytest.raises(ModelLoadError, match="ControlNet wide was made for another model"):
        check_controlnet_fits(tiny_flux_controlnet(wide_flux_transformer()), transformer, "wide")
    with pytest.raises(ModelLoadError, match="could not be loaded \\(SD3ControlNetModel: "):
        load_transformer_controlnet("sd3", str(tmp_path / "nowhere"), dtype=torch.float32, local_only=True)
