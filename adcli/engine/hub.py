"""The Hugging Face hub, as loading sees it: whether a name is a hub id, whether the hub can be
reached (asked once, briefly), and the one-line hint for a model that is neither local nor fetchable."""

from __future__ import annotations

import functools
import http.client
import os
import re
import threading
import urllib.error
import urllib.request

from adcli.errors import setting

SINGLE_FILE_SUFFIXES = (".safetensors",)
HUB_TIMEOUT_S = 3.0
_HUB_ID = re.compile(r"[\w][\w.-]*/[\w][\w.-]*")


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def is_hub_id(text: str) -> bool:
    """``owner/name`` as the hub spells ids; anything else (``nope/``, ``./x``, ``a/b/c``) is meant as a local path."""
    return bool(_HUB_ID.fullmatch(text)) and not text.endswith(SINGLE_FILE_SUFFIXES)


@functools.lru_cache(maxsize=None)
def hub_reachable(timeout: float = HUB_TIMEOUT_S) -> bool:
    """One HTTP request to the hub (``HF_ENDPOINT``; proxies from the environment), ``timeout`` in all,
    DNS included. Asked once per process, before a hub download is tried: with no network, loading
    goes to the cache at once instead of through the hub client's retries (~28 s)."""
    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    answer: list[bool] = []

    def probe() -> None:
        try:
            with urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=timeout):
                answer.append(True)
        except urllib.error.HTTPError:  # the hub answered, if not with 200
            answer.append(True)
        except (OSError, ValueError, http.client.HTTPException):
            answer.append(False)

    thread = threading.Thread(target=probe, name="adcli-hub-probe", daemon=True)
    thread.start()
    thread.join(timeout)  # a hanging DNS lookup is left behind: the answer is "unreachable"
    return bool(answer and answer[0])


def hub_unavailable() -> bool:
    """Loading must use the local Hugging Face cache only: offline mode, or no way to the hub."""
    return hub_offline() or not hub_reachable()


def hub_hint(name: str, option: str = "model") -> str:
    """One line for a model that is neither local nor fetchable; ``option``: the setting that named it."""
    if hub_offline():
        why = "HF_HUB_OFFLINE is set and it is not in the Hugging Face cache"
    elif not hub_reachable():
        why = "the Hugging Face hub cannot be reached (no network) and it is not in the cache"
    else:
        why = "it is not on the Hugging Face hub under that name (or is gated) and not in the cache"
    return (
        f"model {name!r} could not be loaded: {why}; download it once with `hf download {name}` on a machine "
        f"with network, or pass {setting(option)} /path/to/a/local/diffusers/folder or a .safetensors file"
    )
