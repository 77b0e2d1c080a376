"""How engine loops report progress: one callback, called with a small dict; False stops the loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ProgressCallback = Callable[[dict[str, Any]], "bool | None"]
