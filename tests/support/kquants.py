"""K-quant writers for test files: Q4_K, Q5_K and Q6_K blocks from float weights, in numpy.

The ``gguf`` package reads every GGML type but writes only the simple ones (Q8_0, Q4_0…); a
community FLUX GGUF is mostly K-quants. These encoders are the inverse of gguf's dequantizers
(checked against them): a plain min/max fit per sub-block, not llama.cpp's error search, which
is all a test needs — a file of the real layout whose values are close to the originals.
"""

from __future__ import annotations

import numpy as np

QK_K = 256  # values per super-block


def _f16_bytes(values: np.ndarray) -> np.ndarray:
    """(n,) float → (n, 2) uint8, little-endian half precision."""
    return values.astype("<f2").reshape(-1, 1).view(np.uint8)


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a), where=b != 0)


def _blocks(x: np.ndarray) -> np.ndarray:
    flat = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    if flat.size % QK_K:
        raise ValueError(f"K-quants need a multiple of {QK_K} values per tensor, got {flat.size}")
    return flat.reshape(-1, QK_K)


def _scales_and_mins(blocks: np.ndarray, levels: int):
    """Per 32-value sub-block: x ≈ d·sc·q − dmin·m with q in 0..levels, sc and m 6-bit."""
    sub = blocks.reshape(len(blocks), 8, 32)
    low = np.maximum(-sub.min(axis=-1), 0.0)  # (n, 8): the offset, ≥ 0
    scale = (sub.max(axis=-1) + low) / levels  # (n, 8)
    d = scale.max(axis=-1) / 63  # (n,)
    dmin = low.max(axis=-1) / 63
    d, dmin = d.astype(np.float16).astype(np.float32), dmin.astype(np.float16).astype(np.float32)
    sc = np.clip(np.round(_safe_div(scale, d[:, None])), 0, 63).astype(np.uint8)
    m = np.clip(np.round(_safe_div(low, dmin[:, None])), 0, 63).astype(np.uint8)
    step = d[:, None, None] * sc[..., None]
    q = np.round(_safe_div(sub + (dmin[:, None] * m)[..., None], step))
    return d, dmin, sc, m, np.clip(q, 0, levels).astype(np.uint8)  # q: (n, 8, 32)


def _pack_scales(sc: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Eight 6-bit scales and eight 6-bit mins → the 12 bytes Q4_K and Q5_K store."""
    first = sc[:, :4] | ((sc[:, 4:] >> 4) << 6)
    second = m[:, :4] | ((m[:, 4:] >> 4) << 6)
    third = (sc[:, 4:] & 0x0F) | ((m[:, 4:] & 0x0F) << 4)
    return np.concatenate([first, second, third], axis=-1).astype(np.uint8)


def _low_nibbles(q: np.ndarray) -> np.ndarray:
    """(n, 8, 32) values → (n, 128) bytes: sub-blocks 2g and 2g+1 share bytes 32g…32g+31."""
    low = q & 0x0F
    return (low[:, 0::2] | (low[:, 1::2] << 4)).reshape(len(q), 128)


def quantize_q4_k(x: np.ndarray) -> np.ndarray:
    """Float weights → Q4_K blocks, (n, 144) uint8: d, dmin, scales, 4-bit values."""
    d, dmin, sc, m, q = _scales_and_mins(_blocks(x), 15)
    return np.concatenate([_f16_bytes(d), _f16_bytes(dmin), _pack_scales(sc, m), _low_nibbles(q)], axis=-1)


def quantize_q5_k(x: np.ndarray) -> np.ndarray:
    """Float weights → Q5_K blocks, (n, 176) uint8: d, dmin, scales, high bits, low nibbles."""
    d, dmin, sc, m, q = _scales_and_mins(_blocks(x), 31)
    high = ((q >> 4) & 1).astype(np.uint8)  # (n, 8, 32): bit j of byte k is sub-block j's value k
    qh = np.zeros((len(q), 32), dtype=np.uint8)
    for j in range(8):
        qh |= high[:, j] << j
    return np.concatenate([_f16_bytes(d), _f16_bytes(dmin), _pack_scales(sc, m), qh, _low_nibbles(q)], axis=-1)


def quantize_q6_k(x: np.ndarray) -> np.ndarray:
    """Float weights → Q6_K blocks, (n, 210) uint8: low nibbles, high bits, int8 scales, d."""
    blocks = _blocks(x)
    n = len(blocks)
    sub = blocks.reshape(n, 16, 16)
    scale = np.abs(sub).max(axis=-1) / 31  # (n, 16): q − 32 in −32..31
    d = (scale.max(axis=-1) / 127).astype(np.float16).astype(np.float32)
    sc = np.clip(np.round(_safe_div(scale, d[:, None])), -128, 127).astype(np.int8)
    step = d[:, None, None] * sc[..., None].astype(np.float32)
    q = (np.clip(np.round(_safe_div(sub, step)), -32, 31) + 32).astype(np.uint8).reshape(n, 256)
    # value i: low nibble in byte (i // 128)·64 + i % 64 (nibble (i // 64) % 2); high 2 bits in byte
    # (i // 128)·32 + i % 32 (bits 2·((i // 32) % 4)).
    halves = q.reshape(n, 2, 128)
    low = halves & 0x0F
    ql = (low[:, :, :64] | (low[:, :, 64:] << 4)).reshape(n, 128)
    high = (halves >> 4).reshape(n, 2, 4, 32)
    qh = (high[:, :, 0] | (high[:, :, 1] << 2) | (high[:, :, 2] << 4) | (high[:, :, 3] << 6)).reshape(n, 64)
    return np.concatenate([ql, qh, sc.view(np.uint8), _f16_bytes(d)], axis=-1).astype(np.uint8)
