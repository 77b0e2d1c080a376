"""GGUF transformer files (community layout: original keys, Q8_0 and K-quants) loaded through diffusers'
GGUF support: they compute with exactly the file's weights, and land as close to the unquantized
model as each type's quantization error says."""

from __future__ import annotations

import copy

import gguf
import numpy as np
import pytest
import torch
from diffusers.quantizers.gguf.utils import GGUFLinear

from adcli.engine.archs.tiny_transformers import tiny_flux_pipeline, tiny_sd3_pipeline
from adcli.engine.archs.transformer_detect import probe_transformer_file
from adcli.engine.archs.transformer_loading import load_transformer_components, load_transformer_file
from adcli.errors import ModelLoadError
from tests.support.gguf_files import dequantized, write_gguf
from tests.support.transformer_checkpoints import flux_to_original, sd3_to_original
from tests.support.transformer_inputs import inputs_for, input_gradient, run, wide_flux_transformer, wide_sd3_transformer

Q = gguf.GGMLQuantizationType
F32 = torch.float32
TO_ORIGINAL = {"flux": flux_to_original, "sd3": sd3_to_original}


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


def weight_error(state_dict: dict, types: dict, to_original) -> float:
    """The largest relative RMS error of a quantized tensor, by gguf-py's own dequantizer: the error the
    file's type puts into each linear layer, computed without diffusers."""
    original = to_original(state_dict)
    decoded = dequantized(original, types)
    return max(relative(decoded[k], original[k]) for k, t in types.items() if t not in (Q.F32, Q.F16))


def with_file_weights(transformer: torch.nn.Module, arch: str, types: dict) -> torch.nn.Module:
    """An unquantized copy of ``transformer`` holding the weights the GGUF file decodes to (gguf-py),
    mapped back to diffusers' names by the same single-file conversion."""
    from adcli.engine.archs.flux_original import flux_original_to_diffusers
    from diffusers.loaders.single_file_utils import convert_sd3_transformer_checkpoint_to_diffusers

    original = TO_ORIGINAL[arch](transformer.state_dict())
    decoded = dequantized(original, types)
    state = (flux_original_to_diffusers if arch == "flux" else convert_sd3_transformer_checkpoint_to_diffusers)(decoded)
    copy = type(transformer).from_config(transformer.config).eval().requires_grad_(False)
    copy.load_state_dict(state)
    return copy


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("gguf-models")
    pipes = {"flux": tiny_flux_pipeline(), "sd3": tiny_sd3_pipeline()}
    for arch, pipe in pipes.items():
        pipe.save_pretrained(root / arch)
    return root, pipes


@pytest.mark.parametrize("arch", ["flux", "sd3"])
@pytest.mark.parametrize("qtype", [Q.Q8_0, Q.Q4_K])
def test_tiny_models_gguf_loads_through_the_loader_and_runs_close(saved, tmp_path, arch, qtype):
    root, pipes = saved
    transformer = pipes[arch].transformer
    path = tmp_path / f"tiny-{arch}-{qtype.name}.gguf"
    types = write_gguf(TO_ORIGINAL[arch](transformer.state_dict()), path, arch, qtype)
    found, components = load_transformer_components(str(path), dtype=F32, model_config=str(root / arch), arch=arch)
    loaded = components["transformer"]
    assert found == arch and components["text_encoder"] is not None
    assert any(isinstance(m, GGUFLinear) for m in loaded.modules())
    inputs = inputs_for(transformer)
    out, reference = run(loaded, inputs), run(transformer, inputs)
    # the tiny models' rows (32–160 values) are narrower than a K-quant block: they fall back to Q8_0
    assert relative(out, reference) < 2 * weight_error(transformer.state_dict(), types, TO_ORIGINAL[arch])
    assert relative(out, run(with_file_weights(transformer, arch, types), inputs)) < 2e-3


@pytest.mark.parametrize("arch", ["flux", "sd3"])
@pytest.mark.parametrize("qtype", [Q.Q8_0, Q.Q6_K, Q.Q5_K, Q.Q4_K])
def test_community_types_on_real_head_widths(tmp_path, arch, qtype):
    """Each type's output error against the unquantized model stays within twice the largest relative
    weight error it puts into a layer: a linear layer's output error is about its weight's (the error
    is independent of the input), and the residual streams keep the errors from compounding over
    blocks (measured: 0.7–1.0×). Measured output errors: Q8_0 0.4–0.6 %, Q6_K 1.5 %, Q5_K 3 %, Q4_K
    6–7 %, as a uniform quantizer's step/√12 predicts for 255, 63, 31 and 15 levels per sub-block."""
    transformer = wide_flux_transformer() if arch == "flux" else wide_sd3_transformer()
    transformer.save_config(tmp_path / "config")
    path = tmp_path / f"{arch}-{qtype.name}.gguf"
    types = write_gguf(TO_ORIGINAL[arch](transformer.state_dict()), path, arch, qtype)
    assert sum(t == qtype for t in types.values()) >= 20  # attention and MLP weights take the type
    loaded = load_transformer_file(path, probe_transformer_file(path), config=str(tmp_path / "config"), dtype=F32,
                                   local_only=True)
    quant_types = {m.weight.quant_type for m in loaded.modules() if isinstance(m, GGUFLinear)}
    assert qtype in quant_types
    inputs = inputs_for(transformer)
    out, reference = run(loaded, inputs), run(transformer, inputs)
    error = weight_error(transformer.state_dict(), types, TO_ORIGINAL[arch])
    assert 0.1 * error < relative(out, reference) < 2 * error
    assert relative(out, run(with_file_weights(transformer, arch, types), inputs)) < 2e-3
    # AD's gradient w.r.t. the latent flows through the dequantizing linears
    (_, grad), (_, reference_grad) = input_gradient(loaded, inputs), input_gradient(transformer, inputs)
    assert grad is not None and torch.isfinite(grad).all()
    assert relative(grad, reference_grad) < 3 * error


def test_compute_dtype_comes_from_dtype(saved, tmp_path):
    root, pipes = saved
    transformer = pipes["flux"].transformer
    path = tmp_path / "flux-Q8_0.gguf"
    write_gguf(flux_to_original(transformer.state_dict()), path, "flux", Q.Q8_0)
    _, components = load_transformer_components(str(path), dtype=torch.bfloat16, model_config=str(root / "flux"))
    loaded = components["transformer"]
    assert {m.compute_dtype for m in loaded.modules() if isinstance(m, GGUFLinear)} == {torch.bfloat16}
    out = run(loaded, inputs_for(transformer, dtype=torch.bfloat16))
    assert out.dtype == torch.bfloat16
    # bf16's 8-bit mantissa over 57 blocks dominates Q8_0's 0.6 %: the GGUF model in bf16 is about as far
    # from the fp32 model as the unquantized one in bf16 is (measured 6.5 % and 5.6 %)
    reference = run(transformer, inputs_for(transformer))
    plain_bf16 = run(copy.deepcopy(transformer).to(torch.bfloat16), inputs_for(transformer, dtype=torch.bfloat16))
    assert relative(out, reference) < 1.5 * relative(plain_bf16, reference)


def test_gguf_mistakes(saved, tmp_path):
    root, pipes = saved
    path = tmp_path / "flux1-dev-Q8_0.gguf"
    write_gguf(flux_to_original(pipes["flux"].transformer.state_dict()), path, "flux", Q.Q8_0)
    with pytest.raises(ModelLoadError) as error:
        load_transformer_components(str(path), dtype=F32, model_config=str(root / "flux"), quantize="int8")
    assert "quantized already: drop quantize" in str(error.value)
    with pytest.raises(ModelLoadError) as error:
        load_transformer_components(str(path), dtype=F32, model_config=str(root / "sd3"), arch="sd3")
    assert str(error.value).startswith("flux1-dev-Q8_0.gguf is a FLUX transformer, but arch sd3 was asked for")


def test_writer_keeps_small_and_non_linear_tensors_in_float():
    """The community converter's rules, which the loader must cope with: 1-D, small and 4-D tensors stay F32."""
    from tests.support.gguf_files import tensor_type

    assert tensor_type("a.bias", (3072,), Q.Q4_K) == Q.F32
    assert tensor_type("x_embedder.proj.weight", (1536, 16, 2, 2), Q.Q4_K) == Q.F32
    assert tensor_type("small.weight", (16, 32), Q.Q8_0) == Q.F32
    assert tensor_type("qkv.weight", (9216, 3072), Q.Q4_K) == Q.Q4_K
    assert tensor_type("img_in.weight", (3072, 64), Q.Q4_K) == Q.Q8_0  # a row narrower than 256
    assert np.prod((3072, 80)) > 1024 and tensor_type("w", (3072, 80), Q.Q8_0) == Q.F16
