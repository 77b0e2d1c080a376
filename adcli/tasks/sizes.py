"""Sizes of the references: each keeps its own aspect ratio at the output's pixel count."""

from __future__ import annotations

from adcli.presets import SizeSpec
from adcli.tasks.common import resolve_size


def reference_size(image_size: tuple[int, int], output_size: tuple[int, int]) -> tuple[int, int]:
    """A reference of ``image_size`` resized to about the pixels of ``output_size``, its own aspect ratio."""
    return resolve_size(SizeSpec("auto"), output_size, image_size)
