"""An animation of a run: frames decoded every N steps, the final image last, as .webp or .gif.

Fed by the same progress dicts as the live preview (see :mod:`adcli.views.preview`). Frames are
decoded with the caller's ``decode(latents) -> PIL.Image`` (the real VAE decode) and kept as small
RGB images: memory is bounded by ``max_side`` and ``max_frames`` whatever the run's length.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from PIL import Image

from adcli.errors import InputError
from adcli.outputs.atomic import replace_atomically
from adcli.views.preview import step_finished

FORMATS = {".webp": "WEBP", ".gif": "GIF"}
TARGET_FRAMES = 40
FRAME_MS = 100
FINAL_FRAME_MS = 1500  # linger on the result before looping


def default_every(total: int, frames: int = TARGET_FRAMES) -> int:
    """Steps between frames so that a run of ``total`` steps gives about ``frames`` frames."""
    return max(1, round(total / frames))


def animation_format(path: str | Path) -> str:
    """Pillow's format name for ``path``'s suffix; anything but .webp / .gif is a one-line error."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise InputError(f"animation {path}: use a .webp or .gif file name (got {suffix or 'no suffix'!r})")
    return FORMATS[suffix]


class AnimationRecorder:
    """Collects a frame every ``every`` steps; ``finish(final_image)`` writes the animation.

    ``decode`` gets the first latent of the batch, shaped (1, 4, h, w). Frames larger than
    ``max_side`` are scaled down; past ``max_frames`` every other frame is dropped and the
    spacing doubled, so a very long run still gives a bounded, evenly spaced animation.
    """

    def __init__(
        self,
        path: str | Path,
        every: int,
        decode: Callable[[Any], Image.Image],
        max_side: int = 512,
        max_frames: int = 2 * TARGET_FRAMES,
    ):
        self.path = Path(path)
        self.format = animation_format(self.path)
        if every < 1:
            raise InputError(f"--animation-every must be 1 or more, got {every}")
        self.every = every
        self.decode = decode
        self.max_side = max_side
        self.max_frames = max_frames
        self.frames: list[Image.Image] = []

    def _small(self, image: Image.Image) -> Image.Image:
        image = image.convert("RGB")
        if max(image.size) > self.max_side:
            scale = self.max_side / max(image.size)
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            image = image.resize(size, Image.Resampling.LANCZOS)
        return image

    def __call__(self, progress: Mapping[str, Any]) -> None:
        if not step_finished(progress) or progress["step"] % self.every:
            return
        latents = progress.get("latents")
        if latents is None:
            return
        self.frames.append(self._small(self.decode(latents[:1])))
        if len(self.frames) > self.max_frames:
            self.frames = self.frames[1::2]  # the frames at steps 2k·every: even spacing, half as many
            self.every *= 2

    def finish(self, final_image: Image.Image) -> Path:
        """Append ``final_image`` as the last frame and write the animation atomically."""
        final = self._small(final_image)
        frames = [frame if frame.size == final.size else frame.resize(final.size) for frame in self.frames] + [final]
        durations = [FRAME_MS] * (len(frames) - 1) + [FINAL_FRAME_MS]
        options: dict[str, Any] = {"save_all": True, "append_images": frames[1:], "duration": durations, "loop": 0}
        if self.format == "WEBP":
            options.update(lossless=True, method=0)  # exact frames (the last one is the result), fast to encode
        else:
            options.update(optimize=False, disposal=1)
        replace_atomically(self.path, lambda stream: frames[0].save(stream, self.format, **options), "animation")
        self.frames = []
        return self.path
