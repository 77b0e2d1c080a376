"""What a denoiser predicts, how latents are noised, and the sampler step that goes with it.

As in ComfyUI's ``model_sampling`` (prediction types as tiny classes) and k-diffusion (one sampler
for every model): a :class:`Prediction` turns the denoiser's raw prediction into the *denoised*
estimate x₀ (``denoised``), noises a clean latent to a level (``noised``, the AD step's
reference), and takes one sampler step (``step``) — a pure function of the latent, the
prediction and the two noise levels. Latents stay in the model's own scaling (what the denoiser
takes), so samplers need no input scaling:

- :class:`Epsilon` and :class:`VPrediction` (DDPM UNets): variance preserving,
  ``x = √ᾱ·x₀ + √(1−ᾱ)·ε`` with ``σ = √((1−ᾱ)/ᾱ)``; stepped by DDIM (eta 0);
- :class:`FlowMatching` (FLUX.1, SD3): ``x = (1−σ)·x₀ + σ·ε``, the model predicts ``v = ε − x₀``;
  stepped by Euler.

The step reads the prediction as the model gave it (ε, v), not x₀ alone: going from ε to x₀ and
back costs the last bits, which Adam's sign-like first steps then amplify (a recorded AD sampling
run moved by 5 grey levels); from the prediction, DDIM and Euler are diffusers' own arithmetic.
No scheduler object and no step counter: MultiDiffusion steps every window from the same point.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

# (x at σ, the denoiser's prediction, σ, σ_next) → x at σ_next; σ and σ_next are 0-dim CPU tensors
Step = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _alpha(sigma: torch.Tensor) -> torch.Tensor:
    """ᾱ = 1 / (1 + σ²) as a 0-dim fp32 CPU tensor. σ comes from an fp32 ᾱ through float64, so this
    is that ᾱ again exactly, and the coefficients below are computed as diffusers computes them."""
    return (1.0 / (1.0 + sigma.double() ** 2)).float()


def ddim_step(x: torch.Tensor, denoised: torch.Tensor, eps: torch.Tensor, sigma: torch.Tensor,
              sigma_next: torch.Tensor) -> torch.Tensor:
    """DDIM with eta 0 (deterministic) to σ_next, in the variance-preserving scaling, from the
    denoised estimate x₀ and the noise ε it implies: ``x_next = √ᾱ_next·x₀ + √(1−ᾱ_next)·ε``
    (diffusers' DDIM scheduler step, eta 0; k-diffusion: Euler in the variance-exploding scaling)."""
    alpha_next = _alpha(sigma_next)
    return alpha_next ** 0.5 * denoised + (1 - alpha_next) ** 0.5 * eps


def euler_step(x: torch.Tensor, velocity: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
    """Euler from σ to σ_next on the flow ODE, ``x + (σ_next − σ)·v`` in fp32 (k-diffusion's
    ``sample_euler`` with ``d = (x − x₀)/σ = v``; the flow-matching pipelines' scheduler step)."""
    return x.float() + (sigma_next.float() - sigma.float()) * velocity


class Prediction:
    """A denoiser's prediction type: raw prediction → x₀, clean → noised, and its sampler step."""

    name = ""

    def denoised(self, x: torch.Tensor, output: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """x₀ from the latent ``x`` at σ and the denoiser's raw ``output`` (both (B, C, h, w), fp32)."""
        raise NotImplementedError

    def noised(self, clean: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """``clean`` latents taken to noise level σ with ``noise`` (the forward process)."""
        raise NotImplementedError

    def step(self, x: torch.Tensor, output: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
        """The sampler step from σ to σ_next given the denoiser's ``output`` at (x, σ)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<prediction {self.name}>"


class Epsilon(Prediction):
    """The UNet predicts the noise ε (SD1.5, SDXL): ``x₀ = (x − √(1−ᾱ)·ε)/√ᾱ``; DDIM steps."""

    name = "epsilon"

    def denoised(self, x: torch.Tensor, output: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        alpha = _alpha(sigma)
        return (x - (1 - alpha) ** 0.5 * output) / alpha ** 0.5

    def noised(self, clean: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        alpha = _alpha(sigma)  # as diffusers' add_noise: √ᾱ·x₀ + √(1−ᾱ)·ε
        return alpha ** 0.5 * clean + (1 - alpha) ** 0.5 * noise

    def step(self, x: torch.Tensor, output: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
        return ddim_step(x, self.denoised(x, output, sigma), output, sigma, sigma_next)


class VPrediction(Epsilon):
    """The UNet predicts ``v = √ᾱ·ε − √(1−ᾱ)·x₀`` (v-prediction fine-tunes): ``x₀ = √ᾱ·x − √(1−ᾱ)·v``,
    ``ε = √ᾱ·v + √(1−ᾱ)·x``; DDIM steps."""

    name = "v_prediction"

    def denoised(self, x: torch.Tensor, output: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        alpha = _alpha(sigma)
        return alpha ** 0.5 * x - (1 - alpha) ** 0.5 * output

    def step(self, x: torch.Tensor, output: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
        alpha = _alpha(sigma)
        eps = alpha ** 0.5 * output + (1 - alpha) ** 0.5 * x
        return ddim_step(x, self.denoised(x, output, sigma), eps, sigma, sigma_next)


class FlowMatching(Prediction):
    """Rectified flow (FLUX.1, SD3): the model predicts ``v = ε − x₀``; ``x₀ = x − σ·v``; Euler steps."""

    name = "flow"

    def denoised(self, x: torch.Tensor, output: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return x - sigma.float() * output

    def noised(self, clean: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        sigma = sigma.float()
        return sigma * noise + (1.0 - sigma) * clean

    def step(self, x: torch.Tensor, output: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
        return euler_step(x, output, sigma, sigma_next)
