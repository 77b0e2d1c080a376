"""The K-quant encoders of the test GGUF writer, checked against gguf-py's and diffusers' dequantizers."""

from __future__ import annotations

import gguf
import numpy as np
import pytest
import torch
from diffusers.quantizers.gguf.utils import GGUFParameter, dequantize_gguf_tensor

from tests.support import kquants

Q = gguf.GGMLQuantizationType
ENCODERS = {Q.Q4_K: kquants.quantize_q4_k, Q.Q5_K: kquants.quantize_q5_k, Q.Q6_K: kquants.quantize_q6_k}
# Levels per sub-block: Q4_K 16 (x ≈ d·sc·q − m, q in 0..15), Q5_K 32, Q6_K 64 (signed, −32..31).
LEVELS = {Q.Q4_K: 15, Q.Q5_K: 31, Q.Q6_K: 63}


def weights(rows: int = 8, cols: int = 512, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.05, (rows, cols)).astype(np.float32)


@pytest.mark.parametrize("qtype", list(ENCODERS))
def test_bytes_have_ggml_block_sizes_and_decode_close_to_the_input(qtype):
    values = weights()
    blocks = ENCODERS[qtype](values)
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    assert blocks.dtype == np.uint8 and blocks.shape == (values.size // block_size, type_size)
    decoded = gguf.quants.dequantize(blocks.reshape(values.shape[0], -1), qtype).reshape(values.shape)
    # A uniform quantizer's RMS error is step/√12; a sub-block's step is its range / levels, and the
    # 6-bit scales (Q6_K: 8-bit) round the step up to 1/63 more. Sub-blocks of Gaussian values span
    # about 4.5σ (32 values; Q6_K: 2 × max|x| of 16 ≈ 4σ).
    step = 4.5 * values.std() / LEVELS[qtype]
    rms = float(np.sqrt(np.mean((decoded - values) ** 2)))
    assert rms < 1.3 * step / np.sqrt(12), (rms, step / np.sqrt(12))
    assert rms > 0.3 * step / np.sqrt(12)  # really quantized to that many levels, not more finely


@pytest.mark.parametrize("qtype", [*ENCODERS, Q.Q8_0])
def test_diffusers_dequantizes_the_same_values_as_gguf_py(qtype):
    """diffusers' torch dequantizer (what loading uses) against gguf-py's numpy one: the same values,
    up to diffusers' half-precision arithmetic. It computes ``d·sc·q − dmin·m`` in fp16, and the
    difference of two rounded products is off by a few fp16 steps of the largest value (not of the
    result, which may be near zero)."""
    values = weights(seed=1)
    blocks = (ENCODERS[qtype](values) if qtype in ENCODERS else gguf.quants.quantize(values, qtype))
    blocks = blocks.reshape(values.shape[0], -1)
    reference = gguf.quants.dequantize(blocks, qtype).reshape(values.shape)
    ours = dequantize_gguf_tensor(GGUFParameter(torch.from_numpy(blocks.copy()), quant_type=qtype)).float().numpy()
    assert ours.shape == values.shape
    fp16_step = float(np.spacing(np.float16(np.abs(values).max())))
    np.testing.assert_allclose(ours, reference, rtol=2e-3, atol=4 * fp16_step)


def test_a_row_that_is_no_multiple_of_256_is_refused():
    with pytest.raises(ValueError, match="multiple of 256"):
        kquants.quantize_q4_k(np.ones((2, 100), dtype=np.float32))
