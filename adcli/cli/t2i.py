"""`adcli t2i`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from adcli.cli import options as o
from adcli.cli.common import CommonOptions, image_command
from adcli.cli.console import handle_errors
from adcli.cli.run import arguments, run_command


NumImages = o.num_images("Images per prompt, each from its own seed.")


@handle_errors
@image_command("t2i", pair=("prompts", "style"), sampling=True)
def t2i(
    prompt: Annotated[Optional[str], typer.Argument(metavar="PROMPT", help="The text prompt (or use --prompts).", show_default=False)] = None,
    style: Annotated[Optional[list[Path]], typer.Option("--style", "-s", metavar="IMAGE", help="Style reference. Single files are distilled together (repeat --style to join several); a folder or quoted glob gives one style job per image.", show_default=False, rich_help_panel=o.INPUTS)] = None,
    prompts_file: Annotated[Optional[Path], typer.Option("--prompts", metavar="FILE", help="A text file with one prompt per line; each gives its own image(s).", show_default=False, rich_help_panel=o.INPUTS)] = None,
    num_images: NumImages = None,
    layout: Annotated[Optional[Path], typer.Option("--layout", metavar="IMAGE", help="Layout image: sampling starts from its latent noised to --strength (SDEdit), with the content loss on it.", show_default=False, rich_help_panel=o.INPUTS)] = None,
    control: Annotated[Optional[Path], typer.Option("--control", metavar="IMAGE", help="ControlNet conditioning image (edges, depth…); resized to the output size.", show_default=False, rich_help_panel=o.INPUTS)] = None,
    *,
    common: CommonOptions,
) -> None:
    """Generate images of PROMPT in the style of --style: sampling with AD steps (paper Alg. 2).

    [bold]Examples[/]

      adcli t2i "a cat sitting on a bench" --style ref.png -o cat.png

      adcli t2i "a cat on a bench" --style ref.png --arch flux -o cat.png

      adcli t2i "a cat" --style ref.png --model flux1-dev.safetensors --model-config black-forest-labs/FLUX.1-dev

      adcli t2i "a tower" --style ref.png --arch flux --controlnet InstantX/FLUX.1-dev-Controlnet-Canny --control edges.png

      adcli t2i --prompts prompts.txt --style ink.png --arch sd15 --num-images 2 -o out/

      adcli t2i --prompts prompts.txt --style styles/ --name '{style}/{prompt}' --resume --report run.jsonl

      adcli t2i --manifest jobs.csv -o out/

      adcli t2i "a house" --style samples/style/hubble.jpg --model tiny-sdxl --steps 10
    """
    from adcli.batch.sources import read_prompts

    prompts = ([(1, prompt)] if prompt is not None else []) + (read_prompts(prompts_file) if prompts_file else [])
    run_command(
        "t2i", common,
        lambda resolved, note: arguments().t2i_jobs(resolved, prompts, style, note, num_images, layout, control, common.batch.pair),
        inputs_given=bool(prompts or style or layout or control),
    )
