"""The live preview: ``<output>.preview.png`` kept up to date while an image forms.

The engine reports progress as a dict (``step`` 1-based, ``total``, ``loss``, ``latents`` (B, 4, h, w);
sampling adds ``ad_iteration`` / ``ad_iterations``). Every ``every`` steps the writer maps the first
latent to RGB the cheap way (:mod:`adcli.engine.preview`, no VAE) and replaces the
preview file in one rename, so a viewer that reloads never shows a torn picture.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from adcli.engine.preview import latent_to_rgb, upscaled
from adcli.errors import OutputError
from adcli.outputs.atomic import replace_atomically

# PNG compression level 1: a few times faster to write than the default 6, and a preview is thrown away.
_PNG_LEVEL = 1


def preview_path(output: str | Path) -> Path:
    """Where the preview of ``output`` goes: ``out/cat.png`` → ``out/cat.preview.png``."""
    output = Path(output)
    return output.with_name(f"{output.stem}.preview.png")


def step_finished(progress: Mapping[str, Any]) -> bool:
    """True once a step is complete: always when optimizing, after its last AD iteration when sampling."""
    iterations = progress.get("ad_iterations")
    return iterations is None or progress.get("ad_iteration") == iterations


class PreviewWriter:
    """Rewrites the preview of ``output`` every ``every`` steps; ``close()`` removes it.

    ``arch`` is the model's architecture (``sd15`` or ``sdxl``), which picks the colour map. The
    run's own thread only maps the latent to a tiny (h, w, 3) picture and moves on; a background
    thread upscales, encodes and writes it (a 512² PNG takes tens of milliseconds, as long as an
    iteration). When the writer is still busy, a newer picture replaces the waiting one: a slow
    disk drops previews, it never slows the run. A preview that cannot be written stops the
    previews, never the run: the error is kept in ``error``.
    """

    def __init__(self, output: str | Path, arch: str, every: int):
        self.path = preview_path(output)
        self.arch = arch
        self.every = every
        self.written = 0
        self.error: OutputError | None = None
        self._waiting: torch.Tensor | None = None  # (h, w, 3) uint8, the newest not yet written
        self._busy = False
        self._closing = False
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def __call__(self, progress: Mapping[str, Any]) -> None:
        if self.every <= 0 or self._closing or self.error is not None or not step_finished(progress):
            return
        latents = progress.get("latents")
        if latents is None or progress["step"] % self.every:
            return
        rgb = latent_to_rgb(latents[0], self.arch)
        with self._changed:
            self._waiting = rgb
            self._changed.notify_all()
        if self._thread is None:
            self._thread = threading.Thread(target=self._write_loop, name="adcli-preview", daemon=True)
            self._thread.start()

    def _write_loop(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._waiting is not None or self._closing)
                if self._closing:
                    return
                rgb, self._waiting, self._busy = self._waiting, None, True
            image = upscaled(rgb)
            try:
                replace_atomically(self.path, lambda stream: image.save(stream, "PNG", compress_level=_PNG_LEVEL), "preview")
                self.written += 1
            except OutputError as error:
                self.error = error
            with self._changed:
                self._busy = False
                self._changed.notify_all()
                if self.error is not None:
                    return

    def flush(self, timeout: float | None = None) -> None:
        """Wait until the newest preview is on disk (tests and benchmarks; a run need not)."""
        with self._changed:
            self._changed.wait_for(lambda: (self._waiting is None and not self._busy) or self.error is not None, timeout)

    def close(self) -> None:
        """Stop writing and remove the preview (once the final image is written, or the run stopped)."""
        with self._changed:
            self._closing = True
            self._waiting = None
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join()
        with contextlib.suppress(OSError):  # never written, or its folder is gone: nothing to remove
            self.path.unlink()

    def __enter__(self) -> PreviewWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
