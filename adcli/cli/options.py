"""Options shared by the commands, defined once. ``None`` means "not given: keep the preset's value"."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from adcli.errors import InputError

MODEL_HELP = (
    "Model: a Hugging Face hub id, a local diffusers folder, a single .safetensors checkpoint, "
    "or 'tiny' / 'tiny-sdxl' (random-weight test models built in code: fast, but they draw noise)."
)

Preset = Annotated[Optional[Path], typer.Option("--preset", help="A YAML preset layered over the built-in one (configs/<task>.yaml); command-line options still win.", show_default=False)]
Model = Annotated[Optional[str], typer.Option("--model", "-m", help=MODEL_HELP, show_default=False)]
ModelConfig = Annotated[Optional[str], typer.Option("--model-config", help="For a single-file checkpoint: a local diffusers folder (or hub id) of the same architecture to read its configs from.", show_default=False)]
Vae = Annotated[Optional[str], typer.Option("--vae", help="A separate VAE for encoding/decoding: diffusers folder (e.g. from `adcli finetune-vae`), hub id or .safetensors file.", show_default=False)]
Dtype = Annotated[Optional[str], typer.Option("--dtype", help="UNet precision on CUDA: bf16 (default), fp16 or fp32. The CPU always uses fp32.", show_default=False)]
Device = Annotated[Optional[str], typer.Option("--device", help="auto (default: CUDA if present), cpu, cuda or cuda:N.", show_default=False)]
Seed = Annotated[Optional[int], typer.Option("--seed", help="Base seed; each image's seed is derived from it and the image's inputs.", show_default=False)]
Size = Annotated[Optional[str], typer.Option("--size", help="Output size WIDTHxHEIGHT in pixels, multiples of 8 (e.g. 512x512).", show_default=False)]
Layers = Annotated[Optional[str], typer.Option("--layers", help="Self-attention layers for the losses, comma-separated, in forward order; negative counts from the end. Default: the last 6 (write --layers=-6,-5,…).", show_default=False)]
Iterations = Annotated[Optional[int], typer.Option("--iterations", "-n", help="Optimization iterations (the UNet timestep falls from T to 0 over them).", show_default=False)]
Lr = Annotated[Optional[float], typer.Option("--lr", help="Adam learning rate on the latent.", show_default=False)]
ContentWeight = Annotated[Optional[float], typer.Option("--content-weight", help="λ, the weight of the content loss (L = L_AD + λ·L_content).", show_default=False)]
Output = Annotated[Path, typer.Option("--output", "-o", help="A .png, .jpg/.jpeg or .webp path for a single result (its suffix picks the format), or a folder (created if needed).")]
Compile = Annotated[Optional[bool], typer.Option("--compile", help="torch.compile the UNet: the first iterations are slow (compiling), long runs and batches get faster. Off by default.", show_default=False)]
LowVram = Annotated[Optional[bool], typer.Option("--low-vram", help="For 4–8 GB GPUs: gradient checkpointing, text encoders and VAE off the GPU while the UNet works, tiled VAE. Slower.", show_default=False)]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs of the same name (otherwise adcli refuses a named .png, and picks NAME-1.png… in a folder).")]
Tile = Annotated[Optional[str], typer.Option("--tile", help="Seamless tiling: x, y or xy makes the result wrap around in that direction (circular padding in the UNet's and VAE's convolutions); none turns it off. Check with `adcli tile-preview`.", show_default=False)]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display; only written paths (stdout) and errors (stderr).")]


def parse_layers(text: str | None) -> list[int] | None:
    """``"10,11,12"`` or ``"-6,-5"`` → list of ints."""
    if text is None:
        return None
    try:
        return [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise InputError(f"--layers {text!r} must be comma-separated whole numbers, e.g. 10,11,12 or -6,-5,-4") from None


# AD-guided sampling (t2i, texture --mode sample)
Steps = Annotated[Optional[int], typer.Option("--steps", help="DDIM sampling steps.", show_default=False)]
AdIterations = Annotated[Optional[int], typer.Option("--ad-iterations", help="Adam iterations on the latent after each sampling step; 0 gives plain sampling with the same seed.", show_default=False)]
Adain = Annotated[Optional[bool], typer.Option("--adain/--no-adain", help="AdaIN the latent's per-channel mean/std to the noised reference before each AD step.", show_default=False)]

# Batch options: every command that makes images takes these (see tasks/batch.py).
class PairMode(str, Enum):
    product = "product"
    zip = "zip"


Pair = Annotated[PairMode, typer.Option("--pair", help="How contents meet style jobs: product (every content with every style job) or zip (the i-th with the i-th).")]
Manifest = Annotated[Optional[Path], typer.Option("--manifest", help="Jobs from a .csv (header row) or .jsonl file, one job a row: the inputs, and optionally name, seed and any preset setting. Relative paths are relative to the manifest.", show_default=False)]
Name = Annotated[Optional[str], typer.Option("--name", help="Output name template, e.g. '{content}_{style}_{seed}'. Fields: name, task, index, seed, item_seed and the command's inputs; '/' makes subfolders.", show_default=False)]
Resume = Annotated[bool, typer.Option("--resume", help="Skip jobs whose output exists with the same settings, inputs and seed in its metadata; a changed setting reruns the job.")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="List the jobs, their seeds and output paths, and stop (no model is loaded).")]
BatchSize = Annotated[int, typer.Option("--batch-size", min=1, help="Optimize up to N images that share their reference(s) together in one UNet batch (same pictures as one at a time; faster on a GPU when memory allows). Sampling jobs (t2i, expand, texture --mode sample) run one at a time whatever N.")]
class ImageFormat(str, Enum):
    png = "png"
    jpg = "jpg"
    webp = "webp"


Format = Annotated[Optional[ImageFormat], typer.Option("--format", help="File format of the images written into an -o folder: png (default), jpg or webp. A file -o takes its suffix's format. The settings are stored in every format (adcli info, rerun, --resume).", show_default=False)]
Quality = Annotated[int, typer.Option("--quality", min=1, max=100, help="JPEG/WebP quality, 1–100 (PNG is lossless and ignores it).")]
Report = Annotated[Optional[Path], typer.Option("--report", help="Write one JSON line per job (index, name, status, output, seconds, error, seed, rank) to this file.", show_default=False)]

