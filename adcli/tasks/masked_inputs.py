"""The inputs of a masked texture (paper Eqs. 11–12), read, checked and sized before any model loads.

The source label map labels the reference texture; the target label map lays out the output.
The output takes the target map's shape and the reference keeps its own, each with the longer
side of ``size`` (``auto``: the model's native side). The maps are read once per run, however
many images use them (``--num-images``, and each job's build and run).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from adcli.engine.images import fit_longer_side, open_rgb
from adcli.engine.label_maps import LabelMaps, same_aspect
from adcli.errors import InputError, setting
from adcli.presets import ResolvedSettings
from adcli.tasks.inputs import TextureInputs, require_files, source_files, source_key, source_label, source_record
from adcli.tasks.jobs import Job, Note

NATIVE_SIDE = 512  # size auto: SD1.5's side, for every model (the job is sized before any model loads)


@dataclass(frozen=True)
class MaskedInputs:
    """The label maps checked against the reference, and the output and reference sizes."""

    maps: LabelMaps
    output_size: tuple[int, int]
    reference_size: tuple[int, int]
    reference: Image.Image


def _longer_side(settings: Any) -> int:
    spec = settings.size_spec()
    return max(spec.exact) if spec.exact else (spec.width if spec.kind == "longer" else NATIVE_SIDE)


def _identity(source: Any) -> tuple:
    """A source as a cache key: a file by its path and modification time, pixels by their digest."""
    if isinstance(source, (str, Path)) and Path(source).is_file():
        return (source_key(source), Path(source).stat().st_mtime_ns)
    return (source_key(source),) if source is not None else (None,)


_PREPARED: OrderedDict[tuple, MaskedInputs] = OrderedDict()
_PREPARED_KEPT = 8


def prepare(inputs: Any, settings: Any) -> MaskedInputs:
    """The checked and sized inputs of a masked texture, read once however many images use them."""
    key = (*map(_identity, [*inputs["reference"], inputs.get("source_mask"), inputs.get("target_mask")]),
           settings.mode, _longer_side(settings))
    if key not in _PREPARED:
        _PREPARED[key] = _read_and_check(inputs, settings)
        if len(_PREPARED) > _PREPARED_KEPT:
            _PREPARED.popitem(last=False)
    return _PREPARED[key]


def _read_and_check(inputs: Any, settings: Any) -> MaskedInputs:
    """Check the inputs of a masked texture (the maps' colours, the reference's shape) and size them."""
    source_mask, target_mask = inputs.get("source_mask"), inputs.get("target_mask")
    if source_mask is None or target_mask is None:
        given, needed = ("--source-mask", "--target-mask") if source_mask is not None else ("--target-mask", "--source-mask")
        raise InputError(f"{given} needs {needed} too: masked synthesis takes both label maps")
    if settings.mode == "sample":
        raise InputError(f"masked texture synthesis (--source-mask/--target-mask) runs by optimization: drop {setting('mode')} sample")
    references = require_files(list(inputs["reference"]), "reference image")
    if len(references) != 1:
        raise InputError(f"masked synthesis takes one --reference (the texture that --source-mask labels), got {len(references)}")
    require_files([source_mask], "source mask")
    require_files([target_mask], "target mask")
    maps = LabelMaps.read(source_mask, target_mask)
    reference = open_rgb(references[0])
    source_shape = (int(maps.source.shape[1]), int(maps.source.shape[0]))
    if not same_aspect(source_shape, reference.size):
        raise InputError(
            f"source mask {source_record(source_mask)} is {source_shape[0]}x{source_shape[1]} but reference "
            f"{source_record(references[0])} is {reference.size[0]}x{reference.size[1]}: the source map must label "
            f"that image (same aspect ratio)"
        )
    longer = _longer_side(settings)
    target_shape = (int(maps.target.shape[1]), int(maps.target.shape[0]))
    return MaskedInputs(maps, fit_longer_side(*target_shape, longer), fit_longer_side(*reference.size, longer), reference)


def _size(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def masked_texture_job(resolved: ResolvedSettings, inputs: TextureInputs, numbered: bool | None = None,
                       note: Note | None = None) -> Job:
    """Masked texture number ``image_index``; the maps are checked here, before any model loads.

    What the metadata records beside the inputs (labels, sizes) is derived again on a rerun. An
    exact ``size`` of another shape than the target map cannot be kept: ``note`` says what was used.
    """
    settings = resolved.settings
    masked = prepare(inputs, settings)
    reference, source_mask, target_mask = inputs.reference[0], inputs.source_mask, inputs.target_mask
    exact = settings.size_spec().exact
    if note is not None and exact is not None and tuple(exact) != masked.output_size:
        target_shape = (int(masked.maps.target.shape[1]), int(masked.maps.target.shape[0]))
        note(
            f"{setting('size')} {_size(exact)} does not have the target mask's shape: the texture is "
            f"{_size(masked.output_size)}, target mask {source_record(target_mask)}'s aspect ratio "
            f"({_size(target_shape)}) at the longer side {max(exact)}"
        )
    index = int(inputs.image_index or 0)
    numbered = index > 0 if numbered is None else numbered
    name = f"{source_label(reference, 'reference')}_{source_label(target_mask, 'target')}" + (f"_{index}" if numbered else "")
    return Job(
        task="texture",
        inputs={
            "reference": [source_record(reference)], "source_mask": source_record(source_mask),
            "target_mask": source_record(target_mask), "labels": list(masked.maps.colours),
            "output_size": _size(masked.output_size), "reference_size": _size(masked.reference_size), "image_index": index,
        },
        settings=resolved,
        name=name,
        key=f"{name}#{index}",
        steps=settings.iterations,
        fields={"reference": source_label(reference, "reference"), "image_index": index, "target_mask": source_label(target_mask, "target")},
        files=source_files([reference, source_mask, target_mask]),
    )
