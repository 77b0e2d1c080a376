"""Quantized transformer weights: the diffusers quantization config for ``quantize`` and GGUF files.

- ``int8`` / ``fp8``: torchao weight-only (``Int8WeightOnlyConfig`` / ``Float8WeightOnlyConfig``):
  weights stored in 8 bits with a scale per output row, dequantized inside each linear layer, so
  activations (and the gradient AD needs) stay in the compute dtype. Both run on a CPU as well as
  on CUDA; fp8 needs torch's float8 dtypes, which Apple's MPS lacks.
- ``nf4``: bitsandbytes 4-bit NormalFloat, CUDA only.
- GGUF files: already quantized; diffusers' GGUF support dequantizes each linear layer's blocks
  to ``compute_dtype`` as it runs.

Only linear layers' weights are quantized (as every backend here does); norms, biases, embeddings
and the patch convolution stay in the compute dtype. A quantization that the device or the
installed packages cannot do is a one-line :class:`~adcli.errors.ModelLoadError` saying what to
install or use instead. The packages are optional: ``pip install 'adcli[quant]'``.
"""

from __future__ import annotations

import torch

from adcli.engine.quiet import quiet_quantization_backends  # noqa: F401  (where it lives: see there)
from adcli.errors import DeviceError, ModelLoadError, setting

QUANTIZATIONS = ("int8", "fp8", "nf4")
INSTALL_HINT = "pip install 'adcli[quant]'"


def check_quantization(kind: str | None, device: torch.device | None = None) -> None:
    """A one-line error for a ``quantize`` value that adcli does not know or ``device`` (when given)
    cannot run, before anything loads. None and ``"none"`` are no quantization."""
    if kind in (None, "none"):
        return
    if kind not in QUANTIZATIONS:
        raise ModelLoadError(f"{setting('quantize')} {kind} is not a quantization adcli knows: use one of {', '.join(QUANTIZATIONS)}")
    if device is None:
        return
    device = torch.device(device)
    if kind == "nf4" and device.type != "cuda":
        raise DeviceError(
            f"{setting('quantize')} nf4 needs a CUDA GPU (bitsandbytes' 4-bit kernels); on {device.type} use "
            f"{setting('quantize')} int8, or a Q4_K GGUF file for 4-bit weights"
        )
    if kind == "fp8" and device.type == "mps":
        raise DeviceError(f"{setting('quantize')} fp8 needs float8 tensors, which MPS lacks: use {setting('quantize')} int8")


def _torchao_config(kind: str):
    try:
        from diffusers import TorchAoConfig
        from torchao.quantization import Float8WeightOnlyConfig, Int8WeightOnlyConfig
    except ImportError:
        raise ModelLoadError(f"{setting('quantize')} {kind} needs torchao: {INSTALL_HINT}") from None
    return TorchAoConfig(Int8WeightOnlyConfig() if kind == "int8" else Float8WeightOnlyConfig())


def _bitsandbytes_config(compute_dtype: torch.dtype):
    from diffusers import BitsAndBytesConfig
    from diffusers.utils import is_bitsandbytes_available

    if not is_bitsandbytes_available():
        raise ModelLoadError(f"{setting('quantize')} nf4 needs bitsandbytes: {INSTALL_HINT}")
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute_dtype)


def quantization_config(kind: str | None, *, compute_dtype: torch.dtype, device: torch.device | None = None):
    """The ``quantization_config`` for diffusers' ``from_pretrained``/``from_single_file`` of the
    transformer (None for no quantization); checked against ``device`` first when it is given."""
    check_quantization(kind, device)
    if kind in (None, "none"):
        return None
    if kind == "nf4":
        return _bitsandbytes_config(compute_dtype)
    return _torchao_config(kind)


def gguf_config(compute_dtype: torch.dtype):
    """diffusers' config for a GGUF transformer file: its blocks dequantized to ``compute_dtype``."""
    try:
        from diffusers import GGUFQuantizationConfig
        import gguf  # noqa: F401  (diffusers needs it to read the file)
    except ImportError:
        raise ModelLoadError("GGUF files need the gguf package: pip install gguf") from None
    return GGUFQuantizationConfig(compute_dtype=compute_dtype)


def quantize_in_memory(module: torch.nn.Module, kind: str, *, device: torch.device | None = None) -> torch.nn.Module:
    """torchao's weight-only quantization applied to ``module``'s linear layers in place — what loading
    with :func:`quantization_config` does to each of them — for models built in code (the tiny ones).
    nf4 is a load-time option of bitsandbytes only."""
    check_quantization(kind, device)
    if kind == "nf4":
        raise ModelLoadError(f"{setting('quantize')} nf4 applies while loading a model from files, not to a model built in code")
    config = _torchao_config(kind)
    from torchao.quantization import quantize_

    quantize_(module, config.quant_type, filter_fn=lambda m, _: isinstance(m, torch.nn.Linear))
    return module
