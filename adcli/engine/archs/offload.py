"""Fitting a FLUX/SD3 transformer's AD passes in less GPU memory: per-block gradient checkpointing
and block offloading (each block's weights streamed from CPU memory), each reversible.

AD backpropagates from the attention loss to the *input latent* through every block, and that
decides how both must work:
- **Checkpointing** (``enable_gradient_checkpointing``): each block keeps only its input and is
  run again during the backward; the input gradient is the same bit for bit (tested), for about
  one more forward per AD iteration.
- **Offloading**: diffusers' group offloading moves a block's weights in before its forward and
  out after it, by forward hooks; nothing hooks the backward. Applied as diffusers documents it,
  it fails AD either way (tests show both): without checkpointing the backward needs every
  block's weights, which autograd holds (views of the weights: a silent no-saving; weights saved
  as themselves, as an RMSNorm's scale or a convolution's kernel: read after they left); with
  checkpointing, the backward's recomputation brings a block's weights back, and torch's early
  stop of that recomputation skips the hook that would move them out again, so by the end of the
  backward every block is on the GPU. So here each block is a group of its own (diffusers'
  ``apply_group_offloading`` on the block), checkpointing is on, and a gradient hook on each
  block's input sends the block's weights back out when its backward is done. The small top-level
  modules (embedders, final norm and projection) stay on the device.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

_OFFLOAD_HOOKS = ("group_offloading", "lazy_prefetch_group_offloading", "layer_execution_tracker")


def enable_checkpointing(transformer: torch.nn.Module) -> Callable[[], None]:
    """Per-block gradient checkpointing on ``transformer``; returns the function that puts back what it had."""
    was = transformer.is_gradient_checkpointing
    transformer.enable_gradient_checkpointing()

    def restore() -> None:
        if not was:
            transformer.disable_gradient_checkpointing()

    return restore


def transformer_blocks(transformer: torch.nn.Module) -> list[torch.nn.Module]:
    """The blocks in forward order: FLUX's double then single blocks; SD3's joint blocks."""
    return [*transformer.transformer_blocks, *getattr(transformer, "single_transformer_blocks", [])]


def _block_input(args: tuple, kwargs: dict) -> torch.Tensor | None:
    candidates = [kwargs.get("hidden_states"), *args[:1]]
    return next((t for t in candidates if isinstance(t, torch.Tensor) and t.requires_grad), None)


def _offload_after_backward(block: torch.nn.Module, group) -> torch.utils.hooks.RemovableHandle:
    """A pre-hook that, on a pass that will be backpropagated, hooks the block's input gradient: it is
    computed once the block's own backward is done, and then the block's weights may leave."""

    def send_out(grad: torch.Tensor) -> None:
        group.offload_()

    def on_forward(module, args, kwargs):
        hidden = _block_input(args, kwargs)
        if torch.is_grad_enabled() and hidden is not None:
            hidden.register_hook(send_out)

    return block.register_forward_pre_hook(on_forward, with_kwargs=True)


def enable_block_offloading(
    transformer: torch.nn.Module, *, device: torch.device, offload_device: torch.device | str = "cpu",
) -> Callable[[], None]:
    """Stream ``transformer``'s blocks from ``offload_device`` to ``device`` one at a time, forward and
    backward, with checkpointing on (see the module's docstring). The top-level modules move to
    ``device``. Returns the function that removes the hooks and puts every weight back where it was."""
    from diffusers.hooks import apply_group_offloading

    device, offload_device = torch.device(device), torch.device(offload_device)
    placement = [(t, t.device) for t in [*transformer.parameters(), *transformer.buffers()]]
    restore_checkpointing = enable_checkpointing(transformer)
    blocks = transformer_blocks(transformer)
    had_registry = {id(block) for block in blocks if "_diffusers_hook" in block.__dict__}
    in_blocks = {id(t) for block in blocks for t in [*block.parameters(), *block.buffers()]}
    with torch.no_grad():
        for tensor, _ in placement:
            if id(tensor) not in in_blocks:
                tensor.data = tensor.data.to(device)
    handles = []
    for block in blocks:
        apply_group_offloading(block, onload_device=device, offload_device=offload_device,
                               offload_type="block_level", num_blocks_per_group=1)
        group = block._diffusers_hook.get_hook("group_offloading").group
        handles.append(_offload_after_backward(block, group))

    @torch.no_grad()
    def restore() -> None:
        for handle in handles:
            handle.remove()
        for block in blocks:
            registry = block._diffusers_hook
            for name in _OFFLOAD_HOOKS:
                if registry.get_hook(name) is not None:
                    registry.remove_hook(name, recurse=False)
            if id(block) not in had_registry:  # leave no trace: diffusers' registry, the bound forward it set
                block.__dict__.pop("_diffusers_hook", None)
                block.__dict__.pop("forward", None)
        for tensor, where in placement:
            if tensor.device != where:
                tensor.data = tensor.data.to(where)
        restore_checkpointing()

    return restore


@contextmanager
def block_offloading(transformer: torch.nn.Module, **options) -> Iterator[torch.nn.Module]:
    """:func:`enable_block_offloading` for the duration of a block."""
    restore = enable_block_offloading(transformer, **options)
    try:
        yield transformer
    finally:
        restore()
