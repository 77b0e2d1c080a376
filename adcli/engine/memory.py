"""GPU memory: fitting a FLUX/SD3 model into the free memory of the GPU it runs on, and the peak an image used.

A transformer family's model is planned before anything reaches the GPU (FLUX.1-dev's weights alone
are 24 GB in bf16): :func:`plan_for` measures what was loaded — the transformer's weights as stored
(quantized or not), the text encoders, the VAE — estimates one AD pass's activations at the run's
size, and asks :func:`~adcli.engine.archs.memory_plan.plan_memory` for the cheapest savings that fit
the free memory (``torch.cuda.mem_get_info``). :func:`apply_plan` then places the backend by it.
With ``low_vram`` the plan is always applied and said; without, only when the model would not fit
as it is (issue 18: "automatically when the GPU is small"), and said too. The UNets, and any model on
a CPU, keep ``low_vram``'s fixed savings (:mod:`adcli.engine.lowvram`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import is_traceable_wrapper_subclass

from adcli.engine.archs.memory_plan import MemoryPlan, ModelSizes, activation_sizes, plan_memory
from adcli.engine.backend import Backend, place_backend
from adcli.errors import setting

GB = 1e9


def tensor_bytes(tensor: torch.Tensor) -> int:
    """Bytes a tensor holds: a quantized tensor subclass (torchao's) counts its inner tensors, a
    GGUF or bitsandbytes parameter its packed bytes."""
    if is_traceable_wrapper_subclass(tensor):
        names, _ = tensor.__tensor_flatten__()
        return sum(tensor_bytes(getattr(tensor, name)) for name in names)
    return tensor.numel() * tensor.element_size()


def module_gb(module: torch.nn.Module | None) -> float:
    """GB of a module's parameters and buffers, as stored."""
    if module is None:
        return 0.0
    return sum(tensor_bytes(t) for t in [*module.parameters(), *module.buffers()]) / GB


def free_gpu_gb(device: torch.device) -> float | None:
    """Free memory of a CUDA ``device`` in GB (what other processes use is not free); None elsewhere."""
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    return free / GB


def model_sizes(backend: Backend, pixels: int) -> ModelSizes:
    """What a transformer backend needs, measured from its loaded modules: its weights as stored, its
    text encoders in the compute dtype, its VAE in fp32, and one AD pass's activations for images of
    ``pixels`` pixels (one token per ``size_multiple``² pixels, plus the prompt's tokens)."""
    denoiser, config = backend.denoiser, backend.denoiser.config
    width = int(config.num_attention_heads) * int(config.attention_head_dim)
    blocks = len(denoiser.transformer_blocks) + len(getattr(denoiser, "single_transformer_blocks", ()))
    tokens = pixels // backend.size_multiple**2 + backend.arch.text_sequence_length
    value_bytes = torch.finfo(backend.dtype).bits // 8
    activations, checkpointed = activation_sizes(tokens, width, blocks, value_bytes)
    parameters = sum(p.numel() for p in denoiser.parameters())  # logical values: bf16 GB below
    encoders = sum(sum(p.numel() for p in e.parameters()) for e in backend.text_encoders) * value_bytes / GB
    vae = sum(p.numel() for p in backend.vae.parameters()) * 4 / GB
    return ModelSizes(
        transformer=parameters * 2 / GB, text_encoders=encoders, vae=vae, activations=activations,
        checkpointed_activations=checkpointed, blocks=blocks, stored=module_gb(denoiser),
    )


@dataclass(frozen=True)
class Placement:
    """A plan for one backend, and what to say about it (None: nothing to say)."""

    plan: MemoryPlan
    note: str | None


def plan_for(backend: Backend, *, quantized: bool, low_vram: bool, pixels: int | None = None,
             free_gb: float | None = None) -> Placement | None:
    """The memory plan of an unplaced transformer ``backend`` on its GPU, for images of ``pixels``
    pixels (default: the model's native size); None for a UNet, on a CPU, or (without ``low_vram``)
    when the model fits as it is. ``free_gb`` overrides the GPU's free memory (tests)."""
    if not backend.arch.quantizable:
        return None
    free = free_gb if free_gb is not None else free_gpu_gb(backend.device)
    if free is None:
        return None
    width, height = backend.native_size()
    pixels = pixels or width * height
    plan = plan_memory(free, model_sizes(backend, pixels), "stored" if quantized else None)
    saves = plan != MemoryPlan(expected_gb=plan.expected_gb, free_gb=plan.free_gb)
    if not (low_vram or saves):
        return None
    side = round(pixels**0.5)
    line = plan.describe(f"{side}x{side}-pixel images" if side * side == pixels else f"{pixels / 1e6:.2g}-megapixel images")
    if not low_vram:
        line = f"the model does not fit the GPU as it is, so {setting('low_vram')} chose: {line}"
    else:
        line = f"{setting('low_vram')}: {line}"
    return Placement(plan, line)


def apply_plan(backend: Backend, plan: MemoryPlan) -> None:
    """Place an unplaced ``backend`` by ``plan``: parts kept on the CPU stay there, checkpointing, the
    VAE's tiles and the transformer's block streaming switched on. For the model's lifetime (no undo)."""
    from adcli.engine.archs.offload import enable_block_offloading, enable_checkpointing
    from adcli.engine.lowvram import tile_vae

    on_cpu = [part for part, flag in [("denoiser", plan.group_offload), ("vae", plan.vae_tiling),
                                      ("text_encoders", plan.text_encoders_off_gpu)] if flag]
    place_backend(backend, on_cpu)
    backend.encoders_offloaded = plan.text_encoders_off_gpu
    backend.encode_on_cpu = plan.encode_on_cpu
    backend.denoiser_aside_to_encode = plan.encode_aside
    if plan.vae_tiling:
        backend.vae_offloaded = True
        tile_vae(backend)
    if plan.group_offload:
        enable_block_offloading(backend.denoiser, device=backend.device)
    elif plan.checkpointing:
        enable_checkpointing(backend.denoiser)
    if backend.device.type == "cuda":
        torch.cuda.empty_cache()


@dataclass
class Peak:
    """The peak GPU memory of a block in GB; None on a CPU (nothing to measure)."""

    gb: float | None = None


@contextmanager
def peak_memory(device: torch.device) -> Iterator[Peak]:
    """Measure the largest GPU memory allocated (weights included) while the block runs."""
    peak = Peak()
    if device.type != "cuda":
        yield peak
        return
    torch.cuda.reset_peak_memory_stats(device)
    try:
        yield peak
    finally:
        peak.gb = torch.cuda.max_memory_allocated(device) / GB
