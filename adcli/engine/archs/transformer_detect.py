"""What a FLUX.1 or SD3/SD3.5 model is, without loading it and without importing torch or diffusers.

Checks of ``arch`` and ``layers`` run before the slow load (and ``--help`` never pays for torch),
so this reads only small things:
- a diffusers folder's ``transformer/config.json`` (or a bare transformer folder's ``config.json``),
  or that file in the Hugging Face cache for a hub id;
- a ``.safetensors`` header's tensor names: the original Black Forest Labs FLUX layout
  (``double_blocks.N.img_attn.qkv.weight``, ``single_blocks.N.linear1.weight``), SD3's original
  layout (``joint_blocks.N.x_block.attn.qkv.weight``; SD3.5 Medium adds ``x_block.attn2``), either
  with or without the ``model.diffusion_model.`` prefix of full checkpoints, or diffusers' keys;
- a GGUF file's header (the ``gguf`` package's reader, numpy only): its tensor names, and its
  ``general.architecture`` when the names say nothing.

Attention layers are counted as :mod:`adcli.engine.archs.joint_attention` lists them: FLUX
``num_layers + num_single_layers`` (19 + 38 = 57); SD3 each joint block's ``attn`` plus Medium's
image-only ``attn2`` as a layer of its own (Medium 24 + 13 = 37, Large 38).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from adcli.engine.probe import read_safetensors_header
from adcli.errors import ModelLoadError, setting

ARCH_LABELS = {"flux": "FLUX", "sd3": "SD3"}
_WITH_ARTICLE = {"flux": "a FLUX", "sd3": "an SD3"}
TRANSFORMER_CLASSES = {"FluxTransformer2DModel": "flux", "SD3Transformer2DModel": "sd3"}
PIPELINE_CLASSES = {"FluxPipeline": "flux", "StableDiffusion3Pipeline": "sd3"}
# Prefixes a transformer's keys carry inside bigger files: ComfyUI/BFL full checkpoints, pipelines' exports.
KEY_PREFIXES = ("model.diffusion_model.", "transformer.")
_HUB_ID = re.compile(r"[\w-][\w.-]*/[\w.-]+")
_BLOCK = re.compile(r"(double_blocks|single_blocks|joint_blocks|transformer_blocks|single_transformer_blocks)\.(\d+)\.")


@dataclass(frozen=True)
class TransformerProbe:
    """A transformer's architecture (``"flux"``/``"sd3"``), its attention layers in forward order,
    whether it embeds a guidance value (FLUX.1-dev True, schnell False; None for SD3), and the key
    layout of a file (``"original"`` or ``"diffusers"``; None for a folder)."""

    arch: str
    attention_layers: int
    guidance_embeds: bool | None = None
    layout: str | None = None

    @property
    def variant(self) -> str | None:
        """``"dev"`` or ``"schnell"`` for FLUX.1 (by its guidance embedding), None for SD3."""
        if self.arch != "flux":
            return None
        return "dev" if self.guidance_embeds else "schnell"

    @property
    def label(self) -> str:
        return ARCH_LABELS[self.arch]

    @property
    def a_label(self) -> str:
        """"a FLUX" / "an SD3", for messages."""
        return _WITH_ARTICLE[self.arch]


def count_attention_layers(config: dict) -> int:
    """Attention layers of a transformer built from this diffusers ``config`` (its ``config.json``)."""
    arch = TRANSFORMER_CLASSES.get(config.get("_class_name", ""))
    if arch == "flux" or (arch is None and "num_single_layers" in config):
        return int(config.get("num_layers", 19)) + int(config.get("num_single_layers", 38))
    return int(config.get("num_layers", 18)) + len(config.get("dual_attention_layers") or ())


def probe_transformer_config(config: dict) -> TransformerProbe | None:
    """The probe of a transformer ``config.json``; None for any other model class."""
    arch = TRANSFORMER_CLASSES.get(config.get("_class_name", ""))
    if arch is None:
        return None
    guidance = bool(config.get("guidance_embeds", False)) if arch == "flux" else None
    return TransformerProbe(arch, count_attention_layers(config), guidance)


def _strip_prefix(keys: list[str]) -> list[str]:
    """The transformer's own keys: a full checkpoint's ``model.diffusion_model.`` (or ``transformer.``) removed."""
    for prefix in KEY_PREFIXES:
        inner = [key[len(prefix):] for key in keys if key.startswith(prefix)]
        if any(_BLOCK.match(key) for key in inner):
            return inner
    return keys


def _block_indices(keys: list[str], kind: str, contains: str = "") -> set[int]:
    found = set()
    for key in keys:
        match = _BLOCK.match(key)
        if match and match[1] == kind and contains in key:
            found.add(int(match[2]))
    return found


def probe_transformer_keys(keys) -> TransformerProbe | None:
    """The probe of a transformer from its tensor names (any of the layouts in the module's
    docstring); None when they are no FLUX or SD3 transformer's (an SD1.5 checkpoint, an LLM)."""
    keys = _strip_prefix([str(k) for k in keys])
    double, single = _block_indices(keys, "double_blocks"), _block_indices(keys, "single_blocks")
    if double and single:  # BFL's FLUX layout
        guidance = any(k.startswith("guidance_in.") for k in keys)
        return TransformerProbe("flux", max(double) + 1 + max(single) + 1, guidance, "original")
    joint = _block_indices(keys, "joint_blocks")
    if joint:  # SD3's original layout
        dual = _block_indices(keys, "joint_blocks", ".x_block.attn2.")
        return TransformerProbe("sd3", max(joint) + 1 + len(dual), None, "original")
    blocks = _block_indices(keys, "transformer_blocks")
    single = _block_indices(keys, "single_transformer_blocks")
    if blocks and (single or "x_embedder.weight" in keys):  # diffusers' FLUX keys
        guidance = any(k.startswith("time_text_embed.guidance_embedder.") for k in keys)
        return TransformerProbe("flux", max(blocks) + 1 + (max(single) + 1 if single else 0), guidance, "diffusers")
    if blocks and "pos_embed.proj.weight" in keys:  # diffusers' SD3 keys
        dual = _block_indices(keys, "transformer_blocks", ".attn2.")
        return TransformerProbe("sd3", max(blocks) + 1 + len(dual), None, "diffusers")
    return None


def read_gguf_header(path) -> tuple[str | None, list[str]]:
    """``(general.architecture, tensor names)`` of a GGUF file, read by the ``gguf`` package (the
    tensors are memory-mapped, not read). A file that is no GGUF is a one-line :class:`ModelLoadError`."""
    path = Path(path)
    try:
        from gguf import GGUFReader
    except ImportError:
        raise ModelLoadError(f"{path.name} is a GGUF file, which needs the gguf package: pip install gguf") from None
    try:
        reader = GGUFReader(str(path))
        field = reader.fields.get("general.architecture")
        architecture = None if field is None else bytes(field.parts[field.data[0]]).decode("utf-8")
        return architecture, [tensor.name for tensor in reader.tensors]
    except (OSError, ValueError, KeyError, IndexError, UnicodeDecodeError) as error:
        raise ModelLoadError(f"{path} is not a readable GGUF file ({' '.join(str(error).split())[:200]})") from None


def probe_gguf(path) -> TransformerProbe | None:
    """The probe of a GGUF transformer: from its tensor names, as for a ``.safetensors`` file."""
    architecture, names = read_gguf_header(path)
    probe = probe_transformer_keys(names)
    if probe is None and architecture in ARCH_LABELS:
        raise ModelLoadError(
            f"{Path(path).name} says it is a {ARCH_LABELS[architecture]} GGUF, but its tensors are in no layout "
            f"adcli knows (double_blocks/single_blocks, joint_blocks or diffusers' keys)"
        )
    return probe


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"{path} could not be read ({error})") from None


def probe_transformer_folder(folder) -> TransformerProbe | None:
    """A diffusers pipeline folder (its ``transformer/config.json``) or a bare transformer folder
    (``config.json``); None when it holds no FLUX or SD3 transformer config."""
    folder = Path(folder)
    for config in (folder / "transformer" / "config.json", folder / "config.json"):
        if config.is_file():
            return probe_transformer_config(_read_json(config))
    return None


def _probe_hub_cache(repo: str) -> TransformerProbe | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, "transformer/config.json")
    return probe_transformer_config(_read_json(Path(found))) if isinstance(found, str) else None


def probe_transformer_file(path) -> TransformerProbe | None:
    """A ``.safetensors`` or ``.gguf`` file's probe, from its header only; None when it holds no
    FLUX/SD3 transformer. A broken or truncated file is a one-line :class:`ModelLoadError`."""
    path = Path(path)
    if path.suffix.lower() == ".gguf":
        return probe_gguf(path)
    return probe_transformer_keys(k for k in read_safetensors_header(path) if k != "__metadata__")


def probe_transformer(spec: str) -> TransformerProbe | None:
    """``spec`` — a diffusers folder, a ``.safetensors``/``.gguf`` file, or a hub id whose configs are in
    the local Hugging Face cache — probed; None when that cannot be known before loading."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return probe_transformer_folder(path)
    if path.is_file():
        return probe_transformer_file(path) if path.suffix.lower() in (".safetensors", ".gguf") else None
    if _HUB_ID.fullmatch(spec) and not spec.startswith((".", "~")):
        return _probe_hub_cache(spec)
    return None


def check_not_quantizing_gguf(model: str, quantize: str | None) -> None:
    """A GGUF file is quantized already: asking to quantize it again is a one-line error."""
    if quantize not in (None, "none") and str(model).lower().endswith(".gguf"):
        raise ModelLoadError(f"{Path(model).name} is a GGUF file, quantized already: drop {setting('quantize')}")


def check_arch(probe: TransformerProbe, wanted: str | None, name: str) -> None:
    """A model of another architecture than ``wanted`` (``flux``/``sd3``; None or ``auto``: any) is a
    one-line error naming both."""
    if wanted in (None, "auto") or wanted == probe.arch:
        return
    wanted_label = ARCH_LABELS.get(wanted, wanted)
    raise ModelLoadError(
        f"{name} is {probe.a_label} transformer, but {setting('arch')} {wanted} was asked for: "
        f"pass {_WITH_ARTICLE.get(wanted, wanted_label)} model, or {setting('arch')} {probe.arch}"
    )


def check_config_matches(file_probe: TransformerProbe, config: str, name: str) -> None:
    """A single file's ``model_config`` (folder or cached hub id), when it can be probed, must be of the
    file's architecture: its text encoders, VAE and scheduler are what the transformer runs with."""
    config_probe = probe_transformer(config)
    if config_probe is not None and config_probe.arch != file_probe.arch:
        raise ModelLoadError(
            f"{setting('model_config')} {config} is {config_probe.label} but {name} is {file_probe.a_label} "
            f"transformer: pass {file_probe.a_label} diffusers folder or hub id"
        )
