"""LoRAs for FLUX and SD3 through diffusers' FLUX/SD3 loaders, fused at load: scale 0 changes nothing,
scale s adds s·B@A to each adapted weight, the CLIP part is fused too, another architecture's LoRA is
a one-line error."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from adcli.engine.archs.tiny_transformers import build_tiny_flux_components, build_tiny_sd3_components
from adcli.engine.archs.transformer_loras import apply_transformer_loras
from adcli.errors import ModelLoadError
from tests.support.transformer_inputs import inputs_for, run
from tests.support.transformer_loras import save_transformer_lora

BUILD = {"flux": build_tiny_flux_components, "sd3": build_tiny_sd3_components}


@pytest.fixture(scope="module")
def lora_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("loras")
    return {arch: save_transformer_lora(arch, root / arch, text_encoder=True) for arch in BUILD}


def apply(arch, components, path, scale):
    encoders = {name: components[name] for name in ("text_encoder", "text_encoder_2") if name in components}
    return apply_transformer_loras(arch, components["transformer"], encoders, [(str(path), scale)], local_files_only=True)


def clip_output(components) -> torch.Tensor:
    ids = components["tokenizer"](["a red cat"], padding="max_length", max_length=16, return_tensors="pt").input_ids
    with torch.no_grad():
        return components["text_encoder"](ids).last_hidden_state


@pytest.mark.parametrize("arch", ["flux", "sd3"])
def test_scale_zero_changes_nothing_and_scale_one_changes_the_output(lora_files, arch):
    components = BUILD[arch]()
    inputs = inputs_for(components["transformer"])
    before, text_before = run(components["transformer"], inputs), clip_output(components)
    infos = apply(arch, components, lora_files[arch], 0.0)
    assert torch.equal(run(components["transformer"], inputs), before) and torch.equal(clip_output(components), text_before)
    assert infos[0].scale == 0.0 and len(infos[0].sha256) == 64
    apply(arch, components, lora_files[arch], 1.0)
    assert (run(components["transformer"], inputs) - before).abs().max() > 1e-2
    assert (clip_output(components) - text_before).abs().max() > 1e-3
    assert not getattr(components["transformer"], "peft_config", None)  # fused, adapter layers gone


@pytest.mark.parametrize("arch", ["flux", "sd3"])
def test_a_fused_weight_is_w_plus_scale_b_a(lora_files, arch):
    """alpha = rank in the test LoRAs, so W' = W + scale · B @ A, read straight from the file."""
    components = BUILD[arch]()
    layer = components["transformer"].transformer_blocks[3].attn.to_q
    original = layer.weight.detach().clone()
    tensors = load_file(str(lora_files[arch]))
    down = tensors["transformer.transformer_blocks.3.attn.to_q.lora_A.weight"]  # (rank, in)
    up = tensors["transformer.transformer_blocks.3.attn.to_q.lora_B.weight"]  # (out, rank)
    apply(arch, components, lora_files[arch], 0.5)
    torch.testing.assert_close(layer.weight, original + 0.5 * up @ down, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("arch", "other", "message"), [
    ("flux", "sd3", "does not fit this FLUX model: it has weights for transformer_blocks.0.attn2"),
    ("sd3", "flux", "does not fit this SD3 model: it has weights for single_transformer_blocks.0.attn"),
])
def test_another_architectures_lora_is_a_one_line_error(lora_files, arch, other, message):
    components = BUILD[arch]()
    with pytest.raises(ModelLoadError) as error:
        apply(arch, components, lora_files[other], 1.0)
    text = str(error.value)
    assert message in text and "\n" not in text
    assert text.endswith("(an SD3 LoRA?)" if other == "sd3" else "(a FLUX LoRA?)")
    assert not getattr(components["transformer"], "peft_config", None)  # nothing left half-loaded


def test_a_file_that_is_no_lora(tmp_path):
    from safetensors.torch import save_file

    save_file({"some.weight": torch.ones(2, 2)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(ModelLoadError, match="LoRA .* is not a LoRA"):
        apply("flux", BUILD["flux"](), tmp_path / "model.safetensors", 1.0)
