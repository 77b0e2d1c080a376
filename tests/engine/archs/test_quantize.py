"""Quantize on load: int8 and fp8 weight-only (torchao) on a CPU, nf4 refused without CUDA; the latent's
gradient flows through every quantized layer type and stays close to the unquantized one."""

from __future__ import annotations

import sys

import pytest
import torch

from adcli.engine.archs.quantize import check_quantization, quantization_config, quantize_in_memory
from adcli.engine.archs.tiny_transformers import tiny_flux_transformer, tiny_sd3_transformer
from adcli.engine.archs.transformer_loading import load_pretrained_components
from adcli.errors import AdcliError, DeviceError, ModelLoadError
from tests.support.transformer_inputs import input_gradient, inputs_for, run

try:
    import torchao  # noqa: F401
except ImportError:
    torchao = None
needs_torchao = pytest.mark.skipif(torchao is None, reason="needs torchao, in the test extra: pip install -e '.[test]'")

CPU = torch.device("cpu")
F32 = torch.float32


def _seeded(build):
    def built() -> torch.nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return build().eval().requires_grad_(False)

    return built


BUILDERS = {"flux": _seeded(tiny_flux_transformer), "sd3": _seeded(tiny_sd3_transformer)}


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


def expected_weight_error(transformer: torch.nn.Module, kind: str) -> float:
    """The largest relative error that ``kind`` puts into a linear weight, computed here without torchao:
    int8 rounds each row to 255 levels of its absolute maximum; fp8 (e4m3, per-row scale) keeps 3
    mantissa bits."""
    errors = []
    for module in transformer.modules():
        if isinstance(module, torch.nn.Linear):
            weight = module.weight.detach().float()
            scale = weight.abs().amax(dim=1, keepdim=True).clamp_min(1e-12)
            if kind == "int8":
                approx = (weight / scale * 127).round().clamp(-127, 127) * scale / 127
            else:
                approx = (weight / scale * 448).to(torch.float8_e4m3fn).float() * scale / 448
            errors.append(relative(approx, weight))
    return max(errors)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Each tiny transformer saved as a diffusers folder, to load through the quantizing loader."""
    root = tmp_path_factory.mktemp("quant")
    for arch, build in BUILDERS.items():
        build().save_pretrained(root / arch)
    return root


def load_quantized(folder, arch: str, kind: str) -> torch.nn.Module:
    from diffusers import FluxTransformer2DModel, SD3Transformer2DModel

    cls = FluxTransformer2DModel if arch == "flux" else SD3Transformer2DModel
    config = quantization_config(kind, device=CPU, compute_dtype=F32)
    return cls.from_pretrained(str(folder / arch), quantization_config=config, torch_dtype=F32).eval()


@needs_torchao
@pytest.mark.parametrize("arch", ["flux", "sd3"])
@pytest.mark.parametrize("kind", ["int8", "fp8"])
def test_weight_only_quantization_runs_on_a_cpu_and_passes_the_latent_gradient(folders, arch, kind):
    """Output within twice the largest weight error ``kind`` makes (a linear layer's output error is about
    its weight's; residual streams keep errors from compounding), the latent's gradient within three
    times (the backward multiplies by every quantized weight once more). Measured, weight → output →
    gradient: int8 0.40 % → 0.4–0.6 % → 0.4–0.7 %; fp8 2.6 % → 2.5–3.7 % → 2.5–4.9 %."""
    reference = BUILDERS[arch]()
    quantized = load_quantized(folders, arch, kind)
    linear = quantized.transformer_blocks[0].attn.to_q
    assert type(linear.weight).__module__.startswith("torchao")
    inputs = inputs_for(reference)
    error = expected_weight_error(reference, kind)
    assert 0.1 * error < relative(run(quantized, inputs), run(reference, inputs)) < 2 * error
    (_, grad), (_, reference_grad) = input_gradient(quantized, inputs), input_gradient(reference, inputs)
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert relative(grad, reference_grad) < 3 * error


@needs_torchao
def test_in_memory_quantization_is_what_loading_does(folders):
    loaded = load_quantized(folders, "flux", "int8")
    built = quantize_in_memory(BUILDERS["flux"](), "int8", device=CPU)
    inputs = inputs_for(built)
    assert torch.equal(run(built, inputs), run(loaded, inputs))


@needs_torchao
def test_the_loader_quantizes_the_transformer_only(tmp_path):
    from adcli.engine.archs.tiny_transformers import tiny_flux_pipeline

    tiny_flux_pipeline().save_pretrained(tmp_path / "flux")
    config = quantization_config("int8", device=CPU, compute_dtype=F32)
    components = load_pretrained_components(str(tmp_path / "flux"), arch="flux", dtype=F32, local_only=True,
                                            quantization=config)
    assert type(components["transformer"].transformer_blocks[0].attn.to_q.weight).__module__.startswith("torchao")
    assert type(components["text_encoder_2"].encoder.block[0].layer[0].SelfAttention.q.weight) is torch.nn.Parameter


def cli_spelling(error: AdcliError) -> str:
    return error.render(lambda name: "--" + name.replace("_", "-"))


def test_what_a_device_cannot_do_is_a_one_line_error():
    with pytest.raises(DeviceError) as error:
        quantization_config("nf4", device=CPU, compute_dtype=F32)
    message = cli_spelling(error.value)
    assert message.startswith("--quantize nf4 needs a CUDA GPU") and "--quantize int8" in message and "\n" not in message
    with pytest.raises(DeviceError, match="fp8 needs float8 tensors, which MPS lacks: use quantize int8"):
        check_quantization("fp8", torch.device("mps"))
    with pytest.raises(ModelLoadError, match="quantize int4 is not a quantization adcli knows: use one of int8, fp8, nf4"):
        check_quantization("int4", CPU)
    check_quantization(None, CPU)
    check_quantization("int8", CPU)


@pytest.mark.subprocess
@needs_torchao
def test_the_backends_import_quietly():
    """Installed, torchao makes every ``import diffusers`` log about CUDA extensions it cannot load."""
    import subprocess
    from pathlib import Path

    script = ("from adcli.engine.archs.quantize import quiet_quantization_backends\n"
              "quiet_quantization_backends()\nfrom diffusers import FluxTransformer2DModel, TorchAoConfig")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[3])
    assert done.returncode == 0 and "Failed to load" not in done.stderr and "torchao" not in done.stderr, done.stderr


def test_without_torchao_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchao.quantization", None)  # makes the import fail
    with pytest.raises(ModelLoadError, match=r"quantize int8 needs torchao: pip install 'adcli\[quant\]'"):
        quantization_config("int8", device=CPU, compute_dtype=F32)


def test_ci_installs_torchao_so_the_quantized_tests_run():
    """The int8/fp8 tests skip without torchao; CI (`make test` installs the test extra) must not."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    (test_extra,) = re.findall(r"^test = \[(.*?)\]", (root / "pyproject.toml").read_text(), re.MULTILINE)  # tomllib: 3.11+
    assert '"torchao' in test_extra
    assert "-e '.[test]'" in (root / "Makefile").read_text()
