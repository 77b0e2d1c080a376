"""Model names the CLI and presets need without loading the model libraries, derived from the
registry of architectures (:mod:`adcli.engine.archs`)."""

from adcli.engine import archs

ARCH_NAMES = archs.names()
TINY_MODELS = archs.tiny_models()
DEFAULT_MODELS = archs.default_models()
