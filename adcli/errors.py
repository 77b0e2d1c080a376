"""The one error family users see. The CLI turns any of these into a single line and exit code."""

from __future__ import annotations


class AdcliError(Exception):
    """A problem the user can fix; its message names the thing and what to do."""

    exit_code = 2


class InputError(AdcliError):
    """A missing, unreadable or unsuitable input file or value."""


class PresetError(AdcliError):
    """A preset file with an unknown key, a wrong type or a bad value."""


class ModelLoadError(AdcliError):
    """A model that cannot be found, fetched or read."""


class DeviceError(AdcliError):
    """A device or precision that this machine cannot provide."""


class OutputError(AdcliError):
    """An output that cannot be written, or would overwrite a file."""


class NumericalError(AdcliError):
    """The optimization diverged (NaN or Inf loss)."""

    exit_code = 1


class OutOfMemory(AdcliError):
    """The GPU ran out of memory."""

    exit_code = 1


class StorageFull(OutputError):
    """The disk or quota is full: no later output could be written either, so a batch stops."""

    exit_code = 1
