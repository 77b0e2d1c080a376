"""`adcli t2i`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from adcli.cli.common import CommonOptions, image_command
from adcli.cli.console import handle_errors
from adcli.cli.run import run_command
from adcli.presets import load_settings
from adcli.tasks.t2i import model_for_arch, read_prompts, t2i_jobs

Size = Annotated[Optional[str], typer.Option("--size", help="Output size WIDTHxHEIGHT (multiples of 8), or auto: the model's own (1024x1024 SDXL, 512x512 SD1.5).", show_default=False)]


@handle_errors
@image_command(pair=True, settings=("steps", "ad_iterations", "adain", "content_weight", "tile"), size=Size)
def t2i(
    prompt: Annotated[Optional[str], typer.Argument(help="The text prompt (or use --prompts).", show_default=False)] = None,
    style: Annotated[Optional[list[Path]], typer.Option("--style", "-s", metavar="IMAGE", help="Style reference. Single files are distilled together (repeat --style to join several); a folder or quoted glob gives one style job per image.", show_default=False)] = None,
    prompts_file: Annotated[Optional[Path], typer.Option("--prompts", help="A text file with one prompt per line; each gives its own image(s).", show_default=False)] = None,
    negative_prompt: Annotated[Optional[str], typer.Option("--negative-prompt", help="What the images should not show.", show_default=False)] = None,
    num_images: Annotated[int, typer.Option("--num-images", min=1, help="Images per prompt, each from its own seed.")] = 1,
    arch: Annotated[Optional[str], typer.Option("--arch", help="sd15 or sdxl: without --model, use that architecture's default model; with --model, check it.", show_default=False)] = None,
    guidance: Annotated[Optional[float], typer.Option("--guidance", help="Classifier-free guidance scale (1 turns it off).", show_default=False)] = None,
    layout: Annotated[Optional[Path], typer.Option("--layout", help="Layout image: sampling starts from its latent noised to --strength (SDEdit), with the content loss on it.", show_default=False)] = None,
    strength: Annotated[Optional[float], typer.Option("--strength", help="With --layout: the share of the sampling steps run from the noised layout, in (0, 1].", show_default=False)] = None,
    controlnet: Annotated[Optional[str], typer.Option("--controlnet", help="ControlNet: hub id, diffusers folder or .safetensors file for the model's architecture ('tiny' with a tiny model). Needs --control.", show_default=False)] = None,
    control: Annotated[Optional[Path], typer.Option("--control", help="ControlNet conditioning image (edges, depth…), exactly the output size.", show_default=False)] = None,
    control_scale: Annotated[Optional[float], typer.Option("--control-scale", help="Weight of the ControlNet's residuals.", show_default=False)] = None,
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
    prompts = ([prompt] if prompt is not None else []) + (read_prompts(prompts_file) if prompts_file else [])
    overrides = common.overrides() | {
        "arch": arch, "negative_prompt": negative_prompt, "guidance": guidance, "strength": strength,
        "controlnet": controlnet, "control_scale": control_scale,
    }
    if common.model is None and arch is not None:
        overrides["model"] = model_for_arch(load_settings("t2i", common.preset).settings.model, arch)
    run_command(
        "t2i", common, overrides,
        lambda resolved, reporter: t2i_jobs(resolved, prompts, style, reporter, num_images, layout, control, common.batch.pair),
        inputs_given=bool(prompts or style or layout or control),
    )
