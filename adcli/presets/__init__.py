"""Presets: every setting declared once (table.py), a task's YAML defaults, an optional user
preset and overrides, resolved into one frozen, type-checked settings object."""

from adcli.presets.loader import (
    ResolvedSettings,
    builtin_arch_defaults,
    builtin_default,
    builtin_values,
    default_model,
    for_arch,
    load_settings,
    loading_defaults,
    preset_path,
)
from adcli.presets.settings import (
    AUTO_SIZE,
    AppearanceSettings,
    ExpandSettings,
    FinetuneVaeSettings,
    SizeSpec,
    StyleTransferSettings,
    T2ISettings,
    TaskSettings,
    TextureSettings,
    parse_size,
    parse_size_spec,
)
from adcli.presets.table import ARCHS, LOADING_KEYS, SETTINGS, TASK_KEYS, Setting, parse_lora_spec

__all__ = [
    "ARCHS", "AUTO_SIZE", "AppearanceSettings", "LOADING_KEYS", "ExpandSettings", "FinetuneVaeSettings", "ResolvedSettings", "SETTINGS",
    "Setting", "SizeSpec", "StyleTransferSettings", "T2ISettings", "TASK_KEYS", "TaskSettings", "TextureSettings",
    "builtin_arch_defaults", "builtin_default", "builtin_values", "default_model", "for_arch", "load_settings", "loading_defaults", "parse_lora_spec", "parse_size", "parse_size_spec", "preset_path",
]
