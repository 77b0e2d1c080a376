"""GGUF transformer files as the community makes them, written from the tiny models' weights.

Community FLUX/SD3.5 GGUFs (city96's converter, then llama.cpp's quantizer) hold the *original*
key layout (BFL's ``double_blocks…``, Stability's ``joint_blocks…``) with ``general.architecture``
``flux``/``sd3``; 2-D linear weights are quantized, while 1-D tensors (biases, norm scales),
tensors of ≤ 1024 values, the patch convolution and SD3's position table stay in float (F32).
A row that the chosen type's block does not divide (K-quants: 256 values) falls back to Q8_0
(32), as llama.cpp falls back to a type whose block fits. gguf-py writes Q8_0 itself; the
K-quants come from :mod:`tests.support.kquants`.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import torch

from benchmarks.gguf_weights import FLOAT_THRESHOLD, tensor_type  # noqa: F401  (shared with the GPU check)
from tests.support import kquants

Q = gguf.GGMLQuantizationType
KQUANT_ENCODERS = {Q.Q4_K: kquants.quantize_q4_k, Q.Q5_K: kquants.quantize_q5_k, Q.Q6_K: kquants.quantize_q6_k}


def encode(values: np.ndarray, qtype: gguf.GGMLQuantizationType) -> np.ndarray:
    """(rows, cols) float → (rows, bytes per row) uint8 blocks of ``qtype``."""
    if qtype in KQUANT_ENCODERS:
        return KQUANT_ENCODERS[qtype](values).reshape(values.shape[0], -1)
    return gguf.quants.quantize(values, qtype)


def write_gguf(state_dict: dict[str, torch.Tensor], path: Path, arch: str, qtype: gguf.GGMLQuantizationType) -> dict:
    """Write ``state_dict`` (original layout) to ``path`` as a ``qtype`` GGUF; returns each tensor's type."""
    writer = gguf.GGUFWriter(str(path), arch=arch)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    types = {}
    for name, tensor in state_dict.items():
        values = tensor.detach().float().cpu().numpy()
        types[name] = kind = tensor_type(name, values.shape, qtype)
        if kind == Q.F32:
            writer.add_tensor(name, values)
        elif kind == Q.F16:
            writer.add_tensor(name, values.astype(np.float16))
        else:
            writer.add_tensor(name, encode(values, kind), raw_dtype=kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return types


def dequantized(state_dict: dict[str, torch.Tensor], types: dict) -> dict[str, torch.Tensor]:
    """What each tensor reads back as, by gguf-py's own (numpy) dequantizers: the exact weights a
    correct loader must compute with."""
    out = {}
    for name, tensor in state_dict.items():
        values = tensor.detach().float().cpu().numpy()
        kind = types[name]
        if kind == Q.F32:
            out[name] = torch.from_numpy(values.copy())
        elif kind == Q.F16:
            out[name] = torch.from_numpy(values.astype(np.float16).astype(np.float32))
        else:
            out[name] = torch.from_numpy(gguf.quants.dequantize(encode(values, kind), kind).reshape(values.shape).copy())
    return out
