"""The one error family users see. The CLI turns any of these into a single line and exit code.

Layers below the CLI never name a command-line flag: a message names a setting with
:func:`setting` (``f"try a smaller {setting('lr')}"``), and whoever shows the message decides
how a setting is spelled. The CLI renders it as its flag (``--lr``, see :meth:`AdcliError.render`),
the public API as its keyword (``lr``: what ``str(error)`` gives).
"""

from __future__ import annotations

import re
from collections.abc import Callable

_SETTING = re.compile(r"\{setting:([a-z_][a-z0-9_]*)\}")


def setting(name: str) -> str:
    """A placeholder for the setting ``name`` in an error message (see the module's docstring)."""
    return "{setting:%s}" % name


def as_keyword(name: str) -> str:
    return name


def render(text: str, spell: Callable[[str], str] = as_keyword) -> str:
    """``text`` with each setting placeholder spelled by ``spell`` (default: the setting's name).
    Also for remarks that are not errors (a note that a size was adjusted)."""
    return _SETTING.sub(lambda match: spell(match.group(1)), text)


class AdcliError(Exception):
    """A problem the user can fix; its message names the thing and what to do."""

    exit_code = 2

    @property
    def template(self) -> str:
        """The message with its setting placeholders, for an error that wraps this one."""
        return super().__str__()

    def render(self, spell: Callable[[str], str] = as_keyword) -> str:
        """The message with each setting placeholder spelled by ``spell`` (default: the setting's name)."""
        return render(self.template, spell)

    def __str__(self) -> str:
        return self.render()


class InputError(AdcliError, ValueError):
    """A missing, unreadable or unsuitable input file or value."""


class PresetError(AdcliError, ValueError):
    """A preset file with an unknown key, a wrong type or a bad value."""


class ModelLoadError(AdcliError, ValueError):
    """A model that cannot be found, fetched or read."""


class DeviceError(AdcliError, ValueError):
    """A device or precision that this machine cannot provide."""


class OutputError(AdcliError):
    """An output that cannot be written, or would overwrite a file."""


class NumericalError(AdcliError, FloatingPointError):
    """The optimization diverged (NaN or Inf loss)."""

    exit_code = 1


class OutOfMemory(AdcliError, MemoryError):
    """The GPU ran out of memory."""

    exit_code = 1


class StorageFull(OutputError):
    """The disk or quota is full: no later output could be written either, so a batch stops."""

    exit_code = 1
