"""Jobs from command-line arguments: files, folders and globs, paired up, several images each."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from adcli.batch.sources import Note, expand_images, once, pair_up, reference_sets
from adcli.errors import InputError
from adcli.presets import ResolvedSettings
from adcli.tasks.jobs import Job
from adcli.tasks.registry import task


def transfer_jobs(
    name: str, resolved: ResolvedSettings, contents: list[Path] | None, references: list[Path] | None, note: Note,
    pair: str = "product",
) -> list[Job]:
    """Every content with every reference set (``product``) or the i-th with the i-th (``zip``)."""
    spec = task(name)
    content_role, reference_role = spec.inputs.role_of_kind("image"), spec.inputs.role_of_kind("images")
    images = expand_images(contents, f"{content_role} image", note)
    sets = reference_sets(references, f"{reference_role} image", note)
    return [
        spec.job(resolved, {content_role: content, reference_role: refs})
        for content, refs in pair_up(images, sets, pair, content_role, reference_role)
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
    build, note = task("texture").job, once(note)
    return [
        build(resolved, {"reference": refs, "image_index": index, **masks}, num_images > 1, note)
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
    build = task("t2i").job
    jobs = []
    for (number, prompt), style_set in pair_up(prompts, sets, pair, "prompt", "style"):
        for index in range(num_images):
            inputs = {"prompt": prompt, "style": style_set, "image_index": index, "layout": layout, "control": control}
            job = build(resolved, inputs)
            name = f"{job.fields['prompt']}_{job.fields['style']}"
            if len(prompts) > 1:
                name = f"{number:03d}_{name}"
            if num_images > 1:
                name = f"{name}_{index}"
            jobs.append(dataclasses.replace(job, name=name))
    return jobs


def expand_jobs(resolved: ResolvedSettings, references: list[Path] | None, note: Note, num_images: int = 1) -> list[Job]:
    """``num_images`` expansions per reference set, each from its own seed."""
    build = task("expand").job
    return [
        build(resolved, {"reference": refs, "image_index": index}, num_images > 1)
        for refs in reference_sets(references, "reference image", note)
        for index in range(num_images)
    ]
