"""Fitting a FLUX/SD3 transformer's AD passes in less GPU memory: per-block gradient checkpointing
and diffusers' group offloading (blocks streamed from CPU memory), each reversible.

AD backpropagates from the attention loss to the *input latent* through every block, which
interacts with both:
- **Checkpointing** (``enable_gradient_checkpointing``): each block keeps only its input and is
  run again during the backward; the input gradient is the same (a test checks it bit for bit on
  the tiny models), for about one more forward per AD iteration.
- **Group offloading** moves each block's weights to the GPU just before its forward and back
  after it, by forward hooks; nothing hooks the backward. The gradient is still right — autograd
  keeps its own references to the weights a block computed with (the transposed weight views a
  linear layer saves), so offloading a parameter (``param.data = …``) does not reach them — but for
  the same reason those weights stay allocated on the GPU until the backward frees them: without
  checkpointing, offloading saves nothing during an AD pass. With checkpointing the forward saves
  no weights, and the backward's recomputation of each block runs the hooks again (diffusers'
  checkpoint calls the module, hooks included): weights arrive, serve that block's backward, leave.
  So :func:`block_offloading` always turns checkpointing on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

# diffusers' hook names (diffusers.hooks.group_offloading)
_OFFLOAD_HOOKS = ("group_offloading", "lazy_prefetch_group_offloading", "layer_execution_tracker")


def enable_checkpointing(transformer: torch.nn.Module) -> Callable[[], None]:
    """Per-block gradient checkpointing on ``transformer``; returns the function that puts back what it had."""
    was = transformer.is_gradient_checkpointing
    transformer.enable_gradient_checkpointing()

    def restore() -> None:
        if not was:
            transformer.disable_gradient_checkpointing()

    return restore


def _remove_offload_hooks(transformer: torch.nn.Module) -> None:
    """Bring every group's weights back (disk offloading leaves empty placeholders), then unhook."""
    registries = [m._diffusers_hook for m in transformer.modules() if getattr(m, "_diffusers_hook", None) is not None]
    for registry in registries:
        hook = registry.get_hook(_OFFLOAD_HOOKS[0])
        if hook is not None and getattr(hook, "group", None) is not None:
            hook.group.onload_()
    for registry in registries:
        for name in _OFFLOAD_HOOKS:
            if registry.get_hook(name) is not None:
                registry.remove_hook(name, recurse=False)


def enable_block_offloading(
    transformer: torch.nn.Module, *, device: torch.device, offload_device: torch.device | str = "cpu",
    blocks_per_group: int = 1, use_stream: bool = False, offload_to_disk_path: str | None = None,
) -> Callable[[], None]:
    """diffusers' block-level group offloading of ``transformer`` (its weights held on ``offload_device``,
    ``blocks_per_group`` blocks at a time on ``device``), with gradient checkpointing on (see the
    module's docstring). ``use_stream`` overlaps the next group's transfer with compute (CUDA).
    Returns the function that removes the hooks and puts the weights back where they were."""
    placement = [(t, t.device) for t in [*transformer.parameters(), *transformer.buffers()]]
    restore_checkpointing = enable_checkpointing(transformer)
    transformer.enable_group_offload(
        onload_device=torch.device(device), offload_device=torch.device(offload_device), offload_type="block_level",
        num_blocks_per_group=blocks_per_group, use_stream=use_stream, offload_to_disk_path=offload_to_disk_path,
    )

    @torch.no_grad()
    def restore() -> None:
        _remove_offload_hooks(transformer)
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
