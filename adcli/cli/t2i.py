"""`adcli t2i`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from adcli.cli.common import CommonOptions, image_command
from adcli.cli.console import handle_errors
from adcli.cli.run import arguments, run_command
from adcli.engine.defaults import DEFAULT_MODELS
from adcli.presets import load_settings


def model_for_arch(preset_model: str, arch: str | None) -> str | None:
    """With ``--arch`` and no ``--model``: that architecture's default model, in place of a preset
    default of the other architecture. None keeps the preset's model (then ``--arch`` is a check)."""
    if arch in DEFAULT_MODELS and preset_model in DEFAULT_MODELS.values():
        return DEFAULT_MODELS[arch]
    return None


@handle_errors
@image_command("t2i", pair=("prompts", "style"), sampling=True)
def t2i(
    prompt: Annotated[Optional[str], typer.Argument(help="The text prompt (or use --prompts).", show_default=False)] = None,
    style: Annotated[Optional[list[Path]], typer.Option("--style", "-s", metavar="IMAGE", help="Style reference. Single files are distilled together (repeat --style to join several); a folder or quoted glob gives one style job per image.", show_default=False)] = None,
    prompts_file: Annotated[Optional[Path], typer.Option("--prompts", help="A text file with one prompt per line; each gives its own image(s).", show_default=False)] = None,
    num_images: Annotated[int, typer.Option("--num-images", min=1, help="Images per prompt, each from its own seed.")] = 1,
    layout: Annotated[Optional[Path], typer.Option("--layout", help="Layout image: sampling starts from its latent noised to --strength (SDEdit), with the content loss on it.", show_default=False)] = None,
    control: Annotated[Optional[Path], typer.Option("--control", help="ControlNet conditioning image (edges, depth…); resized to the output size.", show_default=False)] = None,
    *,
    common: CommonOptions,
) -> None:
    """Generate images of PROMPT in the style of --style: DDIM sampling with AD steps (paper Alg. 2).

    [bold]Examples[/]

      adcli t2i "a cat sitting on a bench" --style ref.png -o cat.png

      adcli t2i --prompts prompts.txt --style ink.png --arch sd15 --num-images 2 -o out/

      adcli t2i --prompts prompts.txt --style styles/ --name '{style}/{prompt}' --resume --report run.jsonl

      adcli t2i --manifest jobs.csv -o out/

      adcli t2i "a house" --style samples/style/hubble.jpg --model tiny-sdxl --steps 10
    """
    from adcli.batch.sources import read_prompts

    prompts = ([(1, prompt)] if prompt is not None else []) + (read_prompts(prompts_file) if prompts_file else [])
    overrides = common.overrides()
    if "model" not in overrides and overrides.get("arch"):
        model = model_for_arch(load_settings("t2i", common.preset).settings.model, overrides["arch"])
        if model is not None:
            overrides["model"] = model
    run_command(
        "t2i", common,
        lambda resolved, note: arguments().t2i_jobs(resolved, prompts, style, note, num_images, layout, control, common.batch.pair),
        inputs_given=bool(prompts or style or layout or control),
        overrides=overrides,
    )
