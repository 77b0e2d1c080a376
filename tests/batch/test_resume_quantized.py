"""A GGUF model file and the quantization in the metadata and the --resume fingerprint: the file by its
bytes (SHA-256, computed here with hashlib), so that a re-quantized file reruns the job and a moved one
does not; ``quantize`` as a pixel setting (a change reruns, no change skips)."""

from __future__ import annotations

import hashlib
import shutil

import gguf

from adcli.engine.archs.tiny_transformers import tiny_flux_pipeline
from adcli.outputs.files import read_metadata
from tests.support.batch_helpers import run
from tests.support.quantized_models import write_transformer_gguf


Q = gguf.GGMLQuantizationType
T2I = ["t2i", "a red house", "--style", "samples/style/hubble.jpg", "--size", "64x64", "--steps", "2",
       "--ad-iterations", "1", "--quiet"]


def status(*args) -> str:
    """What --resume --dry-run would do with the one job: "skip" or "new"."""
    result = run(*args, "--resume", "--dry-run")
    assert result.exit_code == 0, result.output
    (line,) = [line for line in result.stdout.splitlines() if line.strip()]
    return "skip" if "skip (done)" in line else "new"


def test_a_gguf_file_is_recorded_and_fingerprinted_by_its_bytes(tmp_path):
    pipe = tiny_flux_pipeline()
    pipe.save_pretrained(tmp_path / "flux")
    path = tmp_path / "flux-Q8_0.gguf"
    write_transformer_gguf(pipe.transformer, "flux", path, Q.Q8_0)
    out = tmp_path / "out" / "a.png"
    args = [*T2I, "--model-config", tmp_path / "flux", "-o", out]
    assert run(*args, "--model", path).exit_code == 0
    metadata = read_metadata(out)
    assert metadata["input_digests"][str(path)] == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    assert metadata["settings"]["quantize"] == "none"
    assert hashlib.sha256(path.read_bytes()).hexdigest() in run("info", out).stdout  # as "model file"

    assert status(*args, "--model", path) == "skip"
    moved = tmp_path / "elsewhere" / "renamed.gguf"
    moved.parent.mkdir()
    shutil.copy(path, moved)
    assert status(*args, "--model", moved) == "skip"  # the same bytes under another name
    write_transformer_gguf(pipe.transformer, "flux", path, Q.F32)  # re-quantized: other bytes, same name
    assert status(*args, "--model", path) == "new"


def test_a_change_of_quantization_reruns_the_job(tmp_path):
    out = tmp_path / "out" / "a.png"
    args = [*T2I, "--model", "tiny-flux", "-o", out]
    assert run(*args).exit_code == 0
    assert status(*args) == "skip"
    assert status(*args, "--quantize", "none") == "skip"  # the default, said
    assert status(*args, "--quantize", "int8") == "new"
    assert status(*args, "--quantize", "fp8") == "new"
