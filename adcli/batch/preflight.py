"""Everything about a run that can be checked before the model loads (a load can take minutes):
the model's architecture and layer count from its configs, and that every input image decodes."""

from __future__ import annotations

from pathlib import Path

from adcli.batch.plan import PlannedJob
from adcli.engine import archs
from adcli.engine.images import check_image
from adcli.engine.archs.transformer_detect import check_not_quantizing_gguf
from adcli.engine.probe import probe_model, require_safetensors_lora
from adcli.errors import AdcliError, InputError, setting
from adcli.presets import parse_lora_spec


def check_model(settings: object) -> None:
    """``--arch``, ``--layers``, ``--size``, ``--quantize``, MultiDiffusion windows and tiling with a ControlNet
    against the model's configs, when they can be read without loading; local LoRA files are .safetensors."""
    for spec in getattr(settings, "loras", ()):
        path = Path(parse_lora_spec(spec)[0]).expanduser()
        if path.is_file():
            require_safetensors_lora(path, spec)
    quantize = getattr(settings, "quantize", None)
    check_not_quantizing_gguf(settings.model, quantize)
    probe = probe_model(settings.model, getattr(settings, "model_config", None))
    arch = getattr(settings, "arch", "auto")
    if probe is None:  # not readable before loading (a hub id not yet downloaded): --arch still names the family
        if arch not in (None, "auto") and arch in archs.names():
            check_geometry(settings, archs.get(arch))
        return
    if arch not in (None, "auto") and arch != probe.arch:
        raise InputError(
            f"{setting('arch')} {arch} was asked for, but model {settings.model} is {probe.arch}: "
            f"pass a matching {setting('model')}, or drop {setting('arch')}"
        )
    family = archs.get(probe.arch)
    archs.check_quantizable(family, quantize)
    count, kind = probe.self_attention_layers, family.layer_kind
    for index in getattr(settings, "layers", ()):
        if not -count <= index < count:
            raise InputError(
                f"{setting('layers')} {index} does not exist: model {settings.model} has {count} {kind} layers "
                f"(use 0..{count - 1}, or -{count}..-1 from the end)"
            )
    check_geometry(settings, family)


def check_geometry(settings: object, family: archs.Architecture) -> None:
    """A ``size`` side or MultiDiffusion window the model family cannot take (FLUX.1 and SD3.5: multiples
    of 16 px, windows of whole tokens), before the model loads."""
    spec = settings.size_spec() if hasattr(settings, "size_spec") else None
    if spec is not None and spec.exact is not None:
        family.check_size(spec.exact)
    elif spec is not None and spec.kind == "longer":
        family.check_size((spec.width, spec.width))
    if hasattr(settings, "window"):
        family.check_window(settings.window, settings.stride)
    family.check_tiling_control(getattr(settings, "tile", "none"), bool(getattr(settings, "controlnet", None)))


def check_inputs(plan: list[PlannedJob]) -> dict[int, AdcliError]:
    """The jobs whose model settings or input files are unusable, with the error each gets.

    Each distinct model and file is checked once, however many jobs share it.
    """
    rejected: dict[int, AdcliError] = {}
    models: dict[tuple, AdcliError | None] = {}
    files: dict[Path, AdcliError | None] = {}
    for planned in plan:
        settings = planned.resolved.settings
        key = (settings.model, getattr(settings, "model_config", None), getattr(settings, "arch", None),
               getattr(settings, "quantize", None),
               tuple(getattr(settings, "layers", ())), tuple(getattr(settings, "loras", ())),
               getattr(settings, "size", None), getattr(settings, "window", None), getattr(settings, "stride", None),
               getattr(settings, "tile", None), getattr(settings, "controlnet", None))
        if key not in models:
            models[key] = _error_of(lambda: check_model(settings))
        problems = [models[key]]
        for path in planned.job.files:
            if path not in files:
                files[path] = _error_of(lambda: check_image(path))
            problems.append(files[path])
        found = next((problem for problem in problems if problem is not None), None)
        if found is not None:
            rejected[planned.index] = found
    return rejected


def _error_of(check) -> AdcliError | None:
    try:
        check()
    except AdcliError as error:
        return error
    return None
