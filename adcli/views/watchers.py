"""What a command-line run shows while it works: the live preview and the animation of each image."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from adcli.engine.images import to_pil
from adcli.views.animation import AnimationRecorder, default_every
from adcli.batch.runner import JobWatcher, Watch
from adcli.tasks.model import Model
from adcli.batch.plan import PlannedJob
from adcli.views.preview import PreviewWriter


@dataclass(frozen=True)
class WatchOptions:
    """``animation``: one file for a single image; with several, each image's animation goes
    beside it as ``<output>.animation<suffix>``."""

    animation: Path | None = None
    animation_every: int | None = None
    single: bool = True

    def animation_path(self, output: Path) -> Path | None:
        if self.animation is None:
            return None
        return self.animation if self.single else output.with_name(f"{output.stem}.animation{self.animation.suffix}")


class _Watchers:
    def __init__(self, parts: list[Any], animation: AnimationRecorder | None):
        self.parts, self.animation = parts, animation

    def __call__(self, info: dict[str, Any]) -> None:
        for part in self.parts:
            part(info)

    def close(self, images: list[Image.Image] | None) -> None:
        for part in self.parts:
            if isinstance(part, PreviewWriter):
                part.close()
        if self.animation is not None and images:
            self.animation.finish(images[0])


def make_watch(options: WatchOptions) -> Watch:
    """The watcher of each batch of jobs: a preview (its ``preview_every`` setting) and an animation."""

    def watch(chunk: list[PlannedJob], model: Model) -> JobWatcher | None:
        first = chunk[0]
        parts: list[Any] = []
        every = getattr(first.resolved.settings, "preview_every", 0)
        if every:
            parts.append(PreviewWriter(first.path, model.arch, every))
        animation = None
        path = options.animation_path(first.path)
        if path is not None:
            decode = lambda latents: to_pil(model.backend.decode_latents(latents.float())[0])  # noqa: E731
            animation = AnimationRecorder(path, options.animation_every or default_every(first.job.steps), decode)
            parts.append(animation)
        return _Watchers(parts, animation) if parts else None

    return watch
