"""``from_pipe`` on a user's FluxPipeline / StableDiffusion3Pipeline: its very modules, and the generic
restore of :func:`adcli.engine.pipes.borrowed` putting back everything a FLUX/SD3 run can change."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from diffusers.models.attention_processor import JointAttnProcessor2_0
from diffusers.models.transformers.transformer_flux import FluxAttnProcessor

from adcli.engine.archs.joint_attention import FluxCapture, SD3Capture, flux_attention_layers, sd3_attention_layers
from adcli.engine.archs.tiny_transformers import tiny_flux_pipeline, tiny_sd3_pipeline
from adcli.engine.archs.transformer_pipes import components_from_pipe
from adcli.engine.attention import FeatureStore
from adcli.engine.pipes import borrowed
from adcli.engine.tiny import tiny_pipeline
from adcli.errors import ModelLoadError
from tests.support.transformer_inputs import inputs_for, run

CASES = {
    "flux": (tiny_flux_pipeline, FluxCapture, flux_attention_layers, FluxAttnProcessor),
    "sd3": (tiny_sd3_pipeline, SD3Capture, sd3_attention_layers, JointAttnProcessor2_0),
}


@pytest.mark.parametrize("arch", ["flux", "sd3"])
def test_components_are_the_pipelines_own_modules(arch):
    pipe = CASES[arch][0]()
    found, components = components_from_pipe(pipe)
    assert found == arch
    for name, module in components.items():
        assert module is getattr(pipe, name), name


def test_other_pipelines_are_refused():
    with pytest.raises(ModelLoadError, match="has no FLUX or SD3 transformer: pass a FluxPipeline"):
        components_from_pipe(tiny_pipeline("tiny"))
    pipe = tiny_flux_pipeline()
    pipe.text_encoder_2 = None
    with pytest.raises(ModelLoadError, match="this FluxPipeline has no text_encoder_2"):
        components_from_pipe(pipe)


def as_backend(components: dict) -> SimpleNamespace:
    """What :func:`borrowed` reads of a backend: the transformer as its denoiser."""
    encoders = [components[n] for n in ("text_encoder", "text_encoder_2", "text_encoder_3") if components.get(n)]
    return SimpleNamespace(denoiser=components["transformer"], vae=components["vae"], text_encoders=encoders,
                           controlnet=None, vae_offloaded=False, encoders_offloaded=False, device=torch.device("cpu"), dtype=torch.float32)


@pytest.mark.parametrize("arch", ["flux", "sd3"])
def test_borrowed_puts_back_everything_a_run_can_change(arch):
    build, capture_class, layers_of, processor_class = CASES[arch]
    pipe = build()
    transformer = pipe.transformer
    layers = layers_of(transformer)
    users_own = processor_class()
    layers[-1].set_processor(users_own)  # the user's choice for one layer must come back as that object
    transformer.requires_grad_(True).train()
    processors = {id(layer): layer.processor for layer in layers}
    inputs = inputs_for(transformer)
    before = run(transformer.eval(), inputs)
    transformer.train()

    _, components = components_from_pipe(pipe)
    store = FeatureStore()
    capture = capture_class(transformer, [0, 1, len(layers) - 1], store)
    with pytest.raises(RuntimeError, match="interrupted"), borrowed(as_backend(components)):
        with capture.installed():
            run(transformer, inputs)
        assert store.layers  # the capture ran
        # what a run may leave behind when it is interrupted: processors swapped on the modules
        # (SD3.5 Medium's attn2 among them), checkpointing, hooks, modes, gradient flags
        for layer in (layers[0], layers[1], layers[-1]):
            layer.set_processor(capture.processors[0][1])
        transformer.enable_gradient_checkpointing()
        transformer.register_forward_pre_hook(lambda module, args: None)
        transformer.train().requires_grad_(True)
        raise RuntimeError("interrupted")

    assert all(layer.processor is processors[id(layer)] for layer in layers)
    assert layers[-1].processor is users_own
    assert not transformer.is_gradient_checkpointing and not transformer._forward_pre_hooks
    assert transformer.training and all(p.requires_grad for p in transformer.parameters())  # as the user had it
    assert torch.equal(run(transformer.eval(), inputs), before)
