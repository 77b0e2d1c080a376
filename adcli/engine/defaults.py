"""Model names the CLI and presets need without loading the model libraries, derived from the
registry of architectures (:mod:`adcli.engine.archs`)."""

from adcli.engine import archs

ARCH_NAMES = archs.names()
TINY_MODELS = archs.tiny_models()
DEFAULT_MODELS = archs.default_models()
PRESET_ARCH_KEYS = archs.preset_keys()  # by_arch keys: families and their variants (flux-schnell)


def family_of(preset_key: str) -> str:
    """The family of a ``by_arch`` key: ``flux-schnell`` → ``flux``; a family's own name is itself."""
    return preset_key if preset_key in ARCH_NAMES else preset_key.rsplit("-", 1)[0]
