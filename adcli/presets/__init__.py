"""Presets: a task's YAML defaults, an optional user preset and command-line overrides,
resolved into one frozen, type-checked settings object."""

from adcli.presets.loader import ResolvedSettings, load_settings, preset_path
from adcli.presets.settings import (
    AppearanceSettings,
    FinetuneVaeSettings,
    StyleTransferSettings,
    T2ISettings,
    TaskSettings,
    TextureSettings,
    parse_size,
)

__all__ = [
    "AppearanceSettings",
    "FinetuneVaeSettings",
    "ResolvedSettings",
    "StyleTransferSettings",
    "T2ISettings",
    "TaskSettings",
    "TextureSettings",
    "load_settings",
    "parse_size",
    "preset_path",
]
