"""Jobs from command-line arguments: files, folders and globs, paired up, several images each."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from adcli.errors import InputError
from adcli.presets import ResolvedSettings
from adcli.tasks.expand import expand_job
from adcli.tasks.jobs import Job
from adcli.tasks.registry import task
from adcli.batch.sources import Note, expand_images, pair_up, reference_sets
from adcli.tasks.t2i import t2i_job
from adcli.tasks.texture import texture_job
from adcli.tasks.transfer import APPEARANCE, STYLE_TRANSFER

TRANSFER_ROLES = {"style-transfer": STYLE_TRANSFER, "appearance": APPEARANCE}


def transfer_jobs(
    name: str, resolved: ResolvedSettings, contents: list[Path] | None, references: list[Path] | None, note: Note,
    pair: str = "product",
) -> list[Job]:
    """Every content with every reference set (``product``) or the i-th with the i-th (``zip``)."""
    roles = TRANSFER_ROLES[name]
    images = expand_images(contents, f"{roles.content} image", note)
    sets = reference_sets(references, f"{roles.reference} image", note)
    build = task(name).job
    return [
        build(resolved, {roles.content: content, roles.reference: refs})
        for content, refs in pair_up(images, sets, pair, roles.content, roles.reference)
    ]


def texture_jobs(
    resolved: ResolvedSettings, references: list[Path] | None, note: Note, num_images: int = 1,
    source_mask: Path | None = None, target_mask: Path | None = None,
) -> list[Job]:
    """``num_images`` textures per reference set (a folder or glob: one set per image); with label maps, masked."""
    masks = {"source_mask": source_mask, "target_mask": target_mask} if source_mask or target_mask else {}
    if masks and not references:
        raise InputError("no reference image given: masked synthesis needs --reference (the texture --source-mask labels)")
    sets = [list(references or [])] if masks else reference_sets(references, "reference image", note)
    return [
        texture_job(resolved, {"reference": refs, "image_index": index, **masks}, numbered=num_images > 1)
        for refs in sets
        for index in range(num_images)
    ]


def t2i_jobs(
    resolved: ResolvedSettings, prompts: list[tuple[int, str]], styles: list[Path] | None, note: Note,
    num_images: int = 1, layout: Path | None = None, control: Path | None = None, pair: str = "product",
) -> list[Job]:
    """Every prompt with every style job (``product``) or the i-th with the i-th (``zip``),
    ``num_images`` each. ``prompts`` are (line number, prompt): with several, names are numbered
    by the line the prompt stands on in its file."""
    if not prompts:
        raise InputError("no prompt given: pass a PROMPT, or --prompts FILE with one prompt per line")
    sets = reference_sets(styles, "style image", note)
    jobs = []
    for (number, prompt), style_set in pair_up(prompts, sets, pair, "prompt", "style"):
        for index in range(num_images):
            inputs = {"prompt": prompt, "style": style_set, "image_index": index, "layout": layout, "control": control}
            job = t2i_job(resolved, inputs)
            name = f"{job.fields['prompt']}_{job.fields['style']}"
            if len(prompts) > 1:
                name = f"{number:03d}_{name}"
            if num_images > 1:
                name = f"{name}_{index}"
            jobs.append(dataclasses.replace(job, name=name))
    return jobs


def expand_jobs(resolved: ResolvedSettings, references: list[Path] | None, note: Note, num_images: int = 1) -> list[Job]:
    """``num_images`` expansions per reference set, each from its own seed."""
    return [
        expand_job(resolved, {"reference": refs, "image_index": index}, numbered=num_images > 1)
        for refs in reference_sets(references, "reference image", note)
        for index in range(num_images)
    ]
