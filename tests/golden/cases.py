"""Every command's output on the tiny SD1.5, SDXL, FLUX.1 and SD3.5 models, recorded so that later work
cannot move them silently (SD1.5/SDXL before the engine moved; FLUX.1/SD3.5 when they arrived).

``python -m tests.golden.record`` writes ``tests/golden/<case>.png``; ``tests/golden/test_golden.py``
makes each case again and compares. A case is a plain call of the public API (which equals the
CLI pixel for pixel): the model, the command and its settings, all explicit, so that a change of
a built-in default does not count as a change of the engine.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
GOLDEN = Path(__file__).resolve().parent
CONTENT = SAMPLES / "content" / "chelsea.jpg"
STRUCTURE = SAMPLES / "content" / "coffee.jpg"
STYLE = SAMPLES / "style" / "hubble.jpg"
STYLE_2 = SAMPLES / "style" / "brick.jpg"
GRASS = SAMPLES / "style" / "grass.jpg"
MASKS = SAMPLES / "masks"

Case = Callable[[Callable[[str], object]], Image.Image]


def _one(images) -> Image.Image:
    return images[0] if isinstance(images, list) else images


def _cases() -> dict[str, tuple[str, Case]]:
    import adcli

    def style(model, **kw):
        return adcli.style_transfer(model, CONTENT, STYLE, size="64", seed=3, **kw)

    return {
        # model name, function of the loaded model → image
        "sd15_style_transfer": ("tiny", lambda m: style(m, iterations=12, lr=0.05, content_weight=0.25)),
        "sd15_style_transfer_two_styles": ("tiny", lambda m: adcli.style_transfer(
            m, CONTENT, [STYLE, STYLE_2], size="64x48", seed=1, iterations=8, content_weight=0.5)),
        "sd15_style_transfer_layers": ("tiny", lambda m: style(m, iterations=6, layers=(3, 7, -1))),
        "sd15_appearance": ("tiny", lambda m: adcli.appearance(m, STRUCTURE, STYLE_2, size="64", seed=2, iterations=10)),
        "sd15_texture_optimize": ("tiny", lambda m: _one(adcli.texture(m, STYLE_2, size="64x64", seed=4, iterations=10))),
        "sd15_texture_sample": ("tiny", lambda m: _one(adcli.texture(
            m, STYLE_2, mode="sample", size="64x64", seed=5, steps=6, ad_iterations=2, adain=True))),
        "sd15_texture_masked": ("tiny", lambda m: _one(adcli.texture(
            m, MASKS / "source_texture.png", source_mask=MASKS / "source_labels.png",
            target_mask=MASKS / "target_labels.png", size="64", seed=6, iterations=8))),
        "sd15_texture_tiled": ("tiny", lambda m: _one(adcli.texture(m, GRASS, tile="xy", size="64x64", seed=7, iterations=6))),
        "sd15_t2i": ("tiny", lambda m: _one(adcli.t2i(
            m, "a red house", STYLE, size="64x64", seed=8, steps=6, ad_iterations=2, guidance=7.5, lr=0.015, adain=True))),
        "sd15_t2i_plain": ("tiny", lambda m: _one(adcli.t2i(
            m, "a red house", STYLE, size="64x48", seed=9, steps=5, ad_iterations=0, guidance=7.0))),
        "sd15_t2i_layout": ("tiny", lambda m: _one(adcli.t2i(
            m, "a cat", STYLE, layout=CONTENT, size="64", seed=10, steps=8, ad_iterations=1, guidance=5.0, strength=0.5))),
        "sd15_t2i_tiled": ("tiny", lambda m: _one(adcli.t2i(
            m, "moss", STYLE_2, tile="x", size="64x64", seed=11, steps=4, ad_iterations=1, guidance=3.0))),
        "sd15_expand": ("tiny", lambda m: adcli.expand(
            m, GRASS, size=(128, 64), window=8, stride=4, seed=12, steps=4, ad_iterations=2, window_batch=2)),
        "sd15_expand_tiled": ("tiny", lambda m: adcli.expand(
            m, GRASS, size=(96, 64), window=8, stride=4, seed=13, steps=3, ad_iterations=1, tile="xy")),
        "sdxl_style_transfer": ("tiny-sdxl", lambda m: style(m, iterations=8, content_weight=0.25)),
        "sdxl_appearance": ("tiny-sdxl", lambda m: adcli.appearance(m, STRUCTURE, STYLE, size="64", seed=2, iterations=6)),
        "sdxl_texture_sample": ("tiny-sdxl", lambda m: _one(adcli.texture(
            m, STYLE_2, mode="sample", size="64x64", seed=5, steps=4, ad_iterations=2))),
        "sdxl_t2i": ("tiny-sdxl", lambda m: _one(adcli.t2i(
            m, "a lighthouse", STYLE, size="64x64", seed=8, steps=5, ad_iterations=2, guidance=7.0, lr=0.015, adain=True))),
        "sdxl_t2i_negative": ("tiny-sdxl", lambda m: _one(adcli.t2i(
            m, "a lighthouse", STYLE, negative_prompt="blurry", size="64x48", seed=3, steps=4, ad_iterations=1, guidance=6.0))),
        "sdxl_expand": ("tiny-sdxl", lambda m: adcli.expand(
            m, GRASS, size=(96, 64), window=8, stride=4, seed=12, steps=3, ad_iterations=1)),
        "sd15_finetuned_vae_texture": ("tiny", _finetuned_vae_texture),
        "sd15_controlnet_t2i": ("tiny+controlnet", lambda m: _one(adcli.t2i(
            m, "a tower", STYLE, control=STRUCTURE, size="64x64", seed=14, steps=4, ad_iterations=1, guidance=7.0))),
        **_transformer_cases("flux", "tiny-flux"),
        **_transformer_cases("sd3", "tiny-sd3"),
        "flux_schnell_t2i": ("tiny-flux-schnell", lambda m: _one(adcli.t2i(
            m, "a lighthouse", STYLE, size="64x64", seed=8, steps=4, ad_iterations=2, lr=0.01, adain=True,
            layers=LAST_SEVEN))),
    }


LAST_SEVEN = tuple(range(-7, 0))


def _transformer_cases(prefix: str, model: str) -> dict[str, tuple[str, Case]]:
    """Every command once on a tiny transformer, its settings explicit (the by_arch defaults may move)."""
    import adcli

    layers = {"layers": LAST_SEVEN}
    return {
        f"{prefix}_style_transfer": (model, lambda m: adcli.style_transfer(
            m, CONTENT, STYLE, size="64", seed=3, iterations=8, lr=0.05, content_weight=0.25, **layers)),
        f"{prefix}_appearance": (model, lambda m: adcli.appearance(
            m, STRUCTURE, STYLE_2, size="64", seed=2, iterations=6, content_weight=0.2, **layers)),
        f"{prefix}_texture_optimize": (model, lambda m: _one(adcli.texture(
            m, STYLE_2, size="64x64", seed=4, iterations=6, **layers))),
        f"{prefix}_texture_sample": (model, lambda m: _one(adcli.texture(
            m, STYLE_2, mode="sample", size="64x64", seed=5, steps=4, ad_iterations=2, adain=True, lr=0.01, **layers))),
        f"{prefix}_texture_masked": (model, lambda m: _one(adcli.texture(
            m, MASKS / "source_texture.png", source_mask=MASKS / "source_labels.png",
            target_mask=MASKS / "target_labels.png", size="64", seed=6, iterations=5, **layers))),
        f"{prefix}_texture_tiled": (model, lambda m: _one(adcli.texture(
            m, GRASS, tile="xy", size="64x64", seed=7, iterations=5, **layers))),
        f"{prefix}_t2i": (model, lambda m: _one(adcli.t2i(
            m, "a red house", STYLE, size="64x48", seed=8, steps=4, ad_iterations=2, guidance=3.5, lr=0.01, adain=True,
            **layers))),
        f"{prefix}_t2i_layout": (model, lambda m: _one(adcli.t2i(
            m, "a cat", STYLE, layout=CONTENT, size="64", seed=10, steps=6, ad_iterations=1, guidance=3.0, strength=0.5,
            lr=0.01, **layers))),
        f"{prefix}_t2i_tiled": (model, lambda m: _one(adcli.t2i(
            m, "moss", STYLE_2, tile="x", size="64x64", seed=11, steps=3, ad_iterations=1, guidance=3.0, lr=0.01,
            **layers))),
        f"{prefix}_expand": (model, lambda m: adcli.expand(
            m, GRASS, size=(128, 64), window=8, stride=4, seed=12, steps=3, ad_iterations=1, window_batch=2, lr=0.01,
            **layers)),
        f"{prefix}_expand_tiled": (model, lambda m: adcli.expand(
            m, GRASS, size=(64, 64), window=8, stride=4, seed=13, steps=2, ad_iterations=1, tile="xy", lr=0.01, **layers)),
        f"{prefix}_controlnet_t2i": (f"{model}+controlnet", lambda m: _one(adcli.t2i(
            m, "a tower", STYLE, control=STRUCTURE, size="64x64", seed=14, steps=3, ad_iterations=1, guidance=3.5,
            lr=0.01, **layers))),
        f"{prefix}_finetuned_vae_texture": (model, lambda m: _finetuned_vae_texture(m, model)),
    }


def _finetuned_vae_texture(model, name: str = "tiny") -> Image.Image:
    """finetune-vae for a few steps, then a texture decoded with the fine-tuned VAE."""
    import tempfile

    import adcli

    with tempfile.TemporaryDirectory() as folder:
        vae = adcli.finetune_vae(model, STYLE_2, Path(folder) / "vae", steps=4, crop_size=64, seed=1)
        tuned = adcli.load_model(name, device="cpu", vae=str(vae))
        layers = {} if name == "tiny" else {"layers": LAST_SEVEN}
        return _one(adcli.texture(tuned, STYLE_2, size="64x64", seed=4, iterations=3, **layers))


def load(name: str):
    import adcli

    if name.endswith("+controlnet"):
        return adcli.load_model(name.removesuffix("+controlnet"), device="cpu", controlnet="tiny")
    return adcli.load_model(name, device="cpu")


def cases() -> dict[str, tuple[str, Case]]:
    return _cases()


def golden_path(case: str) -> Path:
    return GOLDEN / f"{case}.png"
