"""The components of a user's own ``FluxPipeline`` / ``StableDiffusion3Pipeline``, shared, not copied.

Whatever the user put into the pipeline (LoRAs, another VAE, a quantized or GGUF transformer) is
what AD runs on. Leaving the pipeline as it was after a run is :func:`adcli.engine.pipes.borrowed`'s
job; it is generic (attention processors through ``attn_processors``/``set_attn_processor``, which
on these transformers reach every ``FluxAttention``/joint ``Attention`` module's own processor,
including SD3.5 Medium's ``attn2``; hooks, flags, modes, gradients, devices), and a test checks it
on both pipelines. Group offloading is the one change it cannot undo (diffusers' hooks replace the
modules' ``forward``): undo it with :func:`adcli.engine.archs.offload.enable_block_offloading`'s
restore function, as :func:`~adcli.engine.archs.offload.block_offloading` does.
"""

from __future__ import annotations

from adcli.errors import ModelLoadError

TRANSFORMER_ARCHS = {"FluxTransformer2DModel": "flux", "SD3Transformer2DModel": "sd3"}
REQUIRED = {
    "flux": ("transformer", "vae", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2", "scheduler"),
    "sd3": ("transformer", "vae", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2", "scheduler"),
}
OPTIONAL = {"flux": (), "sd3": ("text_encoder_3", "tokenizer_3")}  # SD3 runs without its T5


def components_from_pipe(pipe) -> tuple[str, dict]:
    """``(arch, components)`` of ``pipe``: the very modules it holds (no copy, no reload)."""
    transformer = getattr(pipe, "transformer", None)
    arch = TRANSFORMER_ARCHS.get(type(getattr(transformer, "_orig_mod", transformer)).__name__)
    if arch is None:
        raise ModelLoadError(
            f"{type(pipe).__name__} has no FLUX or SD3 transformer: pass a FluxPipeline or StableDiffusion3Pipeline"
        )
    missing = [name for name in REQUIRED[arch] if getattr(pipe, name, None) is None]
    if missing:
        raise ModelLoadError(f"this {type(pipe).__name__} has no {missing[0]}: AD needs {', '.join(REQUIRED[arch])}")
    components = {name: getattr(pipe, name) for name in REQUIRED[arch]}
    components |= {name: getattr(pipe, name, None) for name in OPTIONAL[arch]}
    if any(hasattr(m, "_hf_hook") for m in components.values()):
        raise ModelLoadError(
            "the pipeline uses CPU offload (enable_model_cpu_offload / sequential offload): move it to one device "
            "with pipe.to('cuda') instead; adcli does its own offloading"
        )
    return arch, components
