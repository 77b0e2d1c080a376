"""adcli: Attention Distillation (CVPR 2025) for Stable Diffusion 1.5 and SDXL, as a command-line tool."""

__version__ = "0.1.0"
