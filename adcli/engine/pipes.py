"""A :class:`Backend` over a user's own diffusers pipeline, and the promise to leave it as it was.

:func:`backend_from_pipe` shares the pipeline's modules (no copy, no reload), so whatever the user
put in it — LoRAs, a fine-tuned UNet, another VAE — is what AD runs on. A run changes modules'
state (attention processors, padding for tiling, gradient flags, modes, devices, checkpointing,
compilation, VAE tiling); :func:`borrowed` readies the modules for a run and puts every one of
those back on exit, however the run ends.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from adcli.engine import archs
from adcli.engine.backend import Backend, backend_from_components
from adcli.errors import ModelLoadError, setting

# Forward hooks a run may add (capture's grid hook, tiling's padding hooks); torch keeps them in these dicts.
_HOOK_DICTS = ("_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_forward_hooks",
               "_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_backward_hooks")
# Plain attributes of a module that a run may switch: VAE tiling/slicing, checkpointing, torch.compile,
# and transformers' mark that it installed its hidden-state hooks (installed on a text encoder's first
# call with output_hidden_states; the hooks go with the others on restore, so the mark must go too).
_FLAGS = ("gradient_checkpointing", "use_tiling", "use_slicing", "tile_sample_min_size",
          "tile_latent_min_size", "_compiled_call_impl", "_adcli_compiled", "_output_capturing_hooks_installed")
_MISSING = object()


def backend_from_pipe(pipe, *, source: str | None = None) -> Backend:
    """A Backend sharing ``pipe``'s denoiser, VAE, tokenizers and text encoders (any pipeline of a
    registered architecture, e.g. ``StableDiffusionPipeline``, ``StableDiffusionXLPipeline``).

    The backend reads the pipeline's scheduler config (the pipeline's own scheduler is not
    touched); device and dtype are the denoiser's. Run it inside :func:`borrowed`.
    """
    arch = archs.detect_pipe(pipe)
    components = arch.components_of_pipe(pipe)
    denoiser = components[arch.denoiser_name]
    modules = [denoiser, components["vae"], *(components[e] for _, e in arch.text_parts if components.get(e) is not None)]
    if any(hasattr(m, "_hf_hook") for m in modules):
        raise ModelLoadError(
            f"the pipeline uses CPU offload (enable_model_cpu_offload / sequential offload): move it to one "
            f"device with pipe.to('cuda') instead; adcli's {setting('low_vram')} does its own offloading"
        )
    parameter = next(denoiser.parameters())
    name = source or getattr(pipe, "name_or_path", None) or type(pipe).__name__
    return backend_from_components(
        arch, components, device=parameter.device, dtype=parameter.dtype, source=name, place=False, shared=True
    )


@dataclass
class _ModuleState:
    """Everything a run may change in one module tree, to be put back by :meth:`restore`."""

    root: torch.nn.Module
    processors: dict | None
    training: list[tuple[torch.nn.Module, bool]]
    requires_grad: list[tuple[torch.nn.Parameter, bool]]
    placement: list[tuple[torch.Tensor, torch.device, torch.dtype]]
    paddings: list[tuple[torch.nn.Conv2d, object, str]]
    hooks: list[tuple[dict, frozenset]]
    flags: list[tuple[torch.nn.Module, str, object]]
    weights: dict[str, torch.Tensor] | None

    @classmethod
    def snapshot(cls, root: torch.nn.Module, keep_weights: bool) -> _ModuleState:
        modules = list(root.modules())
        return cls(
            root=root,
            processors=dict(root.attn_processors) if hasattr(root, "attn_processors") else None,
            training=[(m, m.training) for m in modules],
            requires_grad=[(p, p.requires_grad) for p in root.parameters()],
            placement=[(t, t.device, t.dtype) for t in _tensors(root)],
            paddings=[(m, m.padding, m.padding_mode) for m in modules if isinstance(m, torch.nn.Conv2d)],
            hooks=[(d, frozenset(d)) for m in modules for d in _hook_dicts(m)],
            flags=[(m, name, m.__dict__.get(name, _MISSING)) for m in modules for name in _FLAGS],
            weights={k: v.detach().to("cpu", copy=True) for k, v in root.state_dict().items()} if keep_weights else None,
        )

    @torch.no_grad()
    def restore(self) -> None:
        for table, keys in self.hooks:
            for key in [k for k in table if k not in keys]:
                del table[key]
        for conv, padding, mode in self.paddings:
            conv.padding, conv.padding_mode = padding, mode
        for module, name, value in self.flags:
            if value is _MISSING:
                module.__dict__.pop(name, None)
            else:
                module.__dict__[name] = value
        if self.processors is not None and self.root.attn_processors != self.processors:
            self.root.set_attn_processor(self.processors)
        for tensor, device, dtype in self.placement:
            if tensor.device != device or tensor.dtype != dtype:
                tensor.data = tensor.data.to(device, dtype)
        if self.weights is not None:
            self.root.load_state_dict(self.weights)
        for parameter, flag in self.requires_grad:
            parameter.requires_grad_(flag)
        for module, flag in self.training:
            module.training = flag


def _tensors(module: torch.nn.Module) -> list[torch.Tensor]:
    return [*module.parameters(), *module.buffers()]


def _hook_dicts(module: torch.nn.Module) -> list[dict]:
    return [d for d in (getattr(module, name, None) for name in _HOOK_DICTS) if isinstance(d, dict)]


def _modules_of(backend: Backend) -> list[torch.nn.Module]:
    parts = [backend.denoiser, backend.vae, *backend.text_encoders, backend.controlnet]
    unique: dict[int, torch.nn.Module] = {}
    for part in parts:
        if part is not None:
            unique.setdefault(id(part), part)
    return list(unique.values())


@contextmanager
def borrowed(backend: Backend, keep_weights: Sequence[torch.nn.Module] = ()) -> Iterator[Backend]:
    """Ready ``backend``'s modules for a run (eval mode, weights frozen) and, on exit, put back
    exactly what they had: attention processors, conv paddings, forward hooks, requires_grad
    flags, train/eval modes, devices and dtypes, gradient checkpointing, VAE tiling/slicing and
    torch.compile. ``keep_weights`` lists modules whose weights a run changes on purpose (the
    VAE decoder in finetune-vae): a copy of their weights is kept on the CPU and loaded back.

    For a backend adcli loaded itself (``shared`` False) it does the same; it costs little.
    """
    weighted = {id(m) for m in keep_weights}
    states = [_ModuleState.snapshot(m, id(m) in weighted) for m in _modules_of(backend)]
    extra = [_ModuleState.snapshot(m, True) for m in keep_weights if id(m) not in {id(s.root) for s in states}]
    backend_state = (backend.vae_offloaded, backend.encoders_offloaded, backend.device, backend.dtype)
    try:
        for state in states:
            state.root.eval().requires_grad_(False)
        yield backend
    finally:
        for state in [*extra, *states]:
            state.restore()
        backend.vae_offloaded, backend.encoders_offloaded, backend.device, backend.dtype = backend_state
