"""Content-preserving optimization (paper Sec. 3.3): style and appearance transfer share it."""

from __future__ import annotations

from pathlib import Path

from adcli.engine.distill import Guide, distill_by_optimization
from adcli.engine.models import Backend
from adcli.errors import InputError
from adcli.presets import ResolvedSettings, parse_size
from adcli.tasks.common import LatentCache, decode_to_image, require_files
from adcli.tasks.jobs import Job, Reporter


def transfer_jobs(
    resolved: ResolvedSettings,
    contents: list[Path],
    references: list[Path],
    reporter: Reporter,
    content_role: str,
    reference_role: str,
) -> list[Job]:
    """One job per content image; all references are distilled together (token-axis concat)."""
    settings = resolved.settings
    size = parse_size(settings.size)
    require_files(references, f"{reference_role} image")
    cache = LatentCache()

    def job_for(content: Path) -> Job:
        def make(backend: Backend, seed: int):
            content_latents = cache.get(backend, content, size)
            guide = Guide(
                reference=cache.stack(backend, references, size),
                content=content_latents,
                content_weight=settings.content_weight,
            )
            latents = distill_by_optimization(
                backend, content_latents, guide, layers=settings.layers,
                iterations=settings.iterations, lr=settings.lr, on_step=reporter.step,
            )
            return decode_to_image(backend, latents)

        name = "_".join([content.stem] + [r.stem for r in references])
        inputs = {content_role: str(content), reference_role: [str(r) for r in references]}
        return Job(name=name, inputs=inputs, make=make, key=name, steps=settings.iterations)

    if not contents:
        raise InputError(f"no {content_role} image given")
    # a missing content image fails its own job only; the shared references were checked above
    return [job_for(content) for content in contents]
