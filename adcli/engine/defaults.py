"""Model names the CLI needs without loading the model libraries."""

TINY_MODELS = {"tiny": "sd15", "tiny-sd15": "sd15", "tiny-sdxl": "sdxl"}
DEFAULT_MODELS = {
    "sd15": "stable-diffusion-v1-5/stable-diffusion-v1-5",
    "sdxl": "stabilityai/stable-diffusion-xl-base-1.0",
}
