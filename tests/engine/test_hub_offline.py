"""Hub ids with no network: one line, in seconds, naming the model; a cached model still loads.

Run in a child process: the hub client reads HF_HOME / HF_HUB_OFFLINE when it is imported, and
the test session itself runs with HF_HUB_OFFLINE=1 (conftest).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CHILD = textwrap.dedent('''
    import json, os, sys, time
    import torch
    from adcli.engine import hub, models
    from adcli.errors import ModelLoadError
    from adcli.presets import SETTINGS

    def attempt(model, endpoint):
        os.environ["HF_ENDPOINT"] = endpoint
        hub.hub_reachable.cache_clear()
        began = time.perf_counter()
        try:
            backend = models.load_backend(model, device=torch.device("cpu"), dtype=torch.float32)
            outcome = "loaded " + backend.arch.name
        except ModelLoadError as error:
            outcome = error.render(lambda name: SETTINGS[name].flag)  # as the command line spells it
        return {"outcome": outcome, "seconds": time.perf_counter() - began}

    print(json.dumps({name: attempt(model, endpoint) for name, model, endpoint in json.loads(sys.argv[1])}))
''')


def save_in_hub_cache(home: Path, repo: str) -> None:
    """The tiny SD1.5 model as `hf download repo` leaves it in the cache."""
    from diffusers import StableDiffusionPipeline

    from adcli.engine.tiny import build_tiny_components

    folder = home / "hub" / f"models--{repo.replace('/', '--')}"
    revision = "0" * 40
    StableDiffusionPipeline(
        **build_tiny_components("tiny"), safety_checker=None, feature_extractor=None, requires_safety_checker=False
    ).save_pretrained(folder / "snapshots" / revision)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(revision)


@pytest.mark.subprocess
@pytest.mark.slow
def test_unreachable_hub_fails_fast_in_one_line_and_the_cache_still_serves(tmp_path):
    save_in_hub_cache(tmp_path / "hf", "adcli-test/cached-tiny")
    silent = socket.socket()  # accepts connections and never answers: a hub that hangs
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    refused = "http://127.0.0.1:9"
    hanging = f"http://127.0.0.1:{silent.getsockname()[1]}"
    attempts = [
        ("missing, refused", "someone/missing-model", refused),
        ("missing, hanging", "someone/missing-model", hanging),
        ("cached, refused", "adcli-test/cached-tiny", refused),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")} | {"HF_HOME": str(tmp_path / "hf")}
    try:
        child = subprocess.run([sys.executable, "-c", CHILD, json.dumps(attempts)], env=env, capture_output=True,
                               text=True, timeout=240, cwd=Path(__file__).resolve().parents[2])
    finally:
        silent.close()
    assert child.returncode == 0, child.stderr
    found = json.loads(child.stdout.strip().splitlines()[-1])
    for name in ("missing, refused", "missing, hanging"):
        message, seconds = found[name]["outcome"], found[name]["seconds"]
        assert "'someone/missing-model'" in message and "cannot be reached" in message and "--model /path" in message
        assert "\n" not in message
        assert seconds < (2 if name.endswith("refused") else 8), (name, seconds)  # no retries; the probe's 3 s bound
    assert found["cached, refused"]["outcome"] == "loaded sd15"


def test_a_missing_local_folder_is_not_taken_for_a_hub_id(cli, images, tmp_path):
    from tests.support.batch_helpers import one_line_error

    _, reference = images
    for option in ("--vae", "--model"):
        values = {"--vae": ["--model", "tiny", "--vae", "nope/"], "--model": ["--model", "nope/"]}[option]
        line = one_line_error(cli("texture", "-r", reference, *values, "--size", "64x64", "-q", "-o", tmp_path / "o.png"))
        assert "nope/ does not exist" in line and "folder" in line and "hub" not in line.split("(")[0], line
        assert "pass --model" not in line or option == "--model"
