"""GGUF weights made in memory, on the GPU: what a community Q8_0 or Q4_K file of a model loads into.

diffusers loads a GGUF transformer by replacing each quantized linear layer with a ``GGUFLinear``
whose weight is a ``GGUFParameter`` of raw GGML blocks, dequantized to the compute dtype at every
call. :func:`quantize_linears` builds exactly those modules from a model's own (random) weights,
so a full-size FLUX.1 gets its Q8_0 or Q4_K weights in seconds instead of writing a 12 GB file and
reading it back — a file would hold the same blocks (its fused qkv rows split into diffusers' q, k, v
rows, which quantization, per row, does not see).

Which tensors a community file quantizes (city96's converter, llama.cpp's quantizer) is
:func:`tensor_type`. The encoders are plain min/max fits (not llama.cpp's error search), so their
cost to the picture is a slight overestimate of a real file's.
"""

from __future__ import annotations

import gguf
import numpy as np
import torch

Q = gguf.GGMLQuantizationType
FLOAT_THRESHOLD = 1024  # tensors this small stay F32 (city96's QUANTIZATION_THRESHOLD)
QK_K = 256  # values per K-quant super-block


def tensor_type(name: str, shape: tuple[int, ...], wanted: gguf.GGMLQuantizationType) -> gguf.GGMLQuantizationType:
    """The type a community file gives this tensor when ``wanted`` is the file's type: 2-D weights of
    more than 1024 values in ``wanted``, or Q8_0 when ``wanted``'s block does not divide a row (as
    llama.cpp falls back), else F16; everything else F32."""
    if len(shape) != 2 or int(np.prod(shape)) <= FLOAT_THRESHOLD or wanted == Q.F32:
        return Q.F32
    for candidate in (wanted, Q.Q8_0):
        if shape[-1] % gguf.GGML_QUANT_SIZES[candidate][0] == 0:
            return candidate
    return Q.F16


def _f16_bytes(values: torch.Tensor) -> torch.Tensor:
    """(n, k) float → (n, 2k) uint8: little-endian half precision."""
    return values.to(torch.float16).contiguous().view(torch.uint8)


def q8_0_blocks(weight: torch.Tensor) -> torch.Tensor:
    """(rows, cols) float → (rows, cols/32·34) uint8 Q8_0 blocks: an fp16 scale max|x|/127 and 32 int8
    values per block, rounded as gguf-py rounds (with the scale before its fp16 rounding)."""
    rows = weight.shape[0]
    blocks = weight.float().reshape(-1, 32)  # (n, 32)
    scale = blocks.abs().amax(dim=1, keepdim=True) / 127
    inverse = torch.where(scale == 0, torch.zeros_like(scale), 1 / scale)
    values = torch.round(blocks * inverse).to(torch.int8).view(torch.uint8)
    return torch.cat([_f16_bytes(scale), values], dim=1).reshape(rows, -1)


def _safe_div(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(b != 0, a / torch.where(b != 0, b, torch.ones_like(b)), torch.zeros_like(a))


def q4_k_blocks(weight: torch.Tensor) -> torch.Tensor:
    """(rows, cols) float → (rows, cols/256·144) uint8 Q4_K blocks (d, dmin, 12 bytes of 6-bit scales
    and mins, 128 bytes of 4-bit values): per 32-value sub-block x ≈ d·sc·q − dmin·m, q in 0..15."""
    rows = weight.shape[0]
    sub = weight.float().reshape(-1, 8, 32)  # (n, 8, 32): super-blocks of 8 sub-blocks
    low = torch.clamp(-sub.amin(dim=-1), min=0.0)  # (n, 8): the offset, ≥ 0
    scale = (sub.amax(dim=-1) + low) / 15
    d = (scale.amax(dim=-1) / 63).to(torch.float16).float()  # (n,)
    dmin = (low.amax(dim=-1) / 63).to(torch.float16).float()
    sc = torch.clamp(torch.round(_safe_div(scale, d[:, None])), 0, 63).to(torch.uint8)  # (n, 8)
    m = torch.clamp(torch.round(_safe_div(low, dmin[:, None])), 0, 63).to(torch.uint8)
    step = d[:, None, None] * sc[..., None].float()
    q = torch.clamp(torch.round(_safe_div(sub + (dmin[:, None] * m.float())[..., None], step)), 0, 15).to(torch.uint8)
    packed_scales = torch.cat([sc[:, :4] | ((sc[:, 4:] >> 4) << 6), m[:, :4] | ((m[:, 4:] >> 4) << 6),
                               (sc[:, 4:] & 0x0F) | ((m[:, 4:] & 0x0F) << 4)], dim=-1)  # (n, 12)
    nibbles = (q[:, 0::2] | (q[:, 1::2] << 4)).reshape(len(q), 128)  # sub-blocks 2g, 2g+1 share 32 bytes
    blocks = torch.cat([_f16_bytes(d[:, None]), _f16_bytes(dmin[:, None]), packed_scales, nibbles], dim=-1)
    return blocks.reshape(rows, -1)


ENCODERS = {Q.Q8_0: q8_0_blocks, Q.Q4_K: q4_k_blocks}
NAMES = {"q8_0": Q.Q8_0, "q4_k": Q.Q4_K}


def quantize_linears(module: torch.nn.Module, kind: str, compute_dtype: torch.dtype) -> dict[str, str]:
    """Replace ``module``'s linear layers in place by diffusers' ``GGUFLinear`` with ``kind`` (``q8_0``
    or ``q4_k``) blocks of their weights, by the rule of :func:`tensor_type`; a layer a file keeps in
    F16 gets its weight cast to fp16 and back (what reading it gives). Returns each layer's type name."""
    from diffusers.quantizers.gguf.utils import GGUFLinear, GGUFParameter

    wanted, chosen = NAMES[kind], {}
    for parent_name, parent in list(module.named_modules()):
        for name, child in list(parent.named_children()):
            if type(child) is not torch.nn.Linear:
                continue
            full = f"{parent_name}.{name}" if parent_name else name
            kind_here = tensor_type(full + ".weight", tuple(child.weight.shape), wanted)
            chosen[full] = kind_here.name
            if kind_here == Q.F32:
                continue
            if kind_here == Q.F16:
                child.weight.data = child.weight.data.to(torch.float16).to(child.weight.dtype)
                continue
            with torch.no_grad():
                blocks = ENCODERS[kind_here](child.weight)
            layer = GGUFLinear(child.in_features, child.out_features, child.bias is not None,
                               compute_dtype=compute_dtype, device="meta")
            layer.weight = GGUFParameter(blocks, quant_type=kind_here)
            if child.bias is not None:
                layer.bias = child.bias
            layer.requires_grad_(False)
            setattr(parent, name, layer)
    return chosen
