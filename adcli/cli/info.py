"""`adcli info`: the settings stored in an output image."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from adcli.cli.console import handle_errors, stdout
from adcli.errors import InputError
from adcli.outputs.files import read_metadata
from adcli.outputs.metadata import peak_memory_text


def _value(value: object) -> str:
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)


def _describe(path: Path, metadata: dict) -> None:
    stdout.print(f"[bold]{escape(str(path))}[/]")
    rows = [
        ("task", metadata.get("task")),
        ("made by", f"adcli {metadata.get('adcli_version', '?')} ({metadata.get('model_arch', '?')} model)"),
        ("image seed", f"{metadata.get('seed')} (derived from the base seed {metadata.get('settings', {}).get('seed')})"),
        ("preset", metadata.get("preset")),
        ("size used", metadata.get("size_used", "?")),
    ]
    rows += [("lora", f"{lora.get('name')} × {lora.get('scale')} ({lora.get('sha256', '')[:12]})") for lora in metadata.get("loras") or []]
    model = (metadata.get("settings") or {}).get("model")
    if model in (metadata.get("input_digests") or {}):
        rows.append(("model file", metadata["input_digests"][model]))
    if peak := peak_memory_text(metadata):
        rows.append(("peak GPU memory", peak))
    rows += [(f"input {key}", _value(value)) for key, value in (metadata.get("inputs") or {}).items()]
    rows += [(key, _value(value)) for key, value in sorted((metadata.get("settings") or {}).items())]
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        stdout.print(f"  {key:<{width}}  {escape(str(value))}")
    stdout.print(f"  {'rerun':<{width}}  adcli rerun {escape(str(path))}")


@handle_errors
def info(
    images: Annotated[list[Path], typer.Argument(help="Images written by adcli.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print each image's stored settings as one JSON object per line.")] = False,
) -> None:
    """Print the settings, inputs and seed stored in images adcli wrote.

    [bold]Examples[/]

      adcli info outputs/chelsea_hubble.png

      adcli info outputs/*.png --json | jq .settings.iterations
    """
    for path in images:
        if not path.is_file():
            raise InputError(f"{path} does not exist: give an image written by adcli")
        metadata = read_metadata(path)
        if metadata is None:
            raise InputError(f"{path} has no adcli settings in it (not written by adcli, or the metadata was stripped)")
        try:
            if as_json:
                print(json.dumps({"file": str(path), **metadata}, sort_keys=True), flush=True)
            else:
                _describe(path, metadata)
        except BrokenPipeError:  # `adcli info … | head`: the reader has all it wanted
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 — so that the exit flush does not fail again
            return
