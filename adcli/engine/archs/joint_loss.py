"""The AD objective on joint attention (FLUX.1, SD3/SD3.5), over features from
:mod:`adcli.engine.archs.joint_attention`; the per-layer terms are :mod:`adcli.losses`'s."""

from __future__ import annotations

import torch

from adcli.engine.archs.joint_attention import JointLayerFeatures
from adcli.losses import ad_loss_from_output, content_loss


def joint_distillation_loss(
    target: dict[int, JointLayerFeatures],
    reference: dict[int, JointLayerFeatures],
    content: dict[int, JointLayerFeatures] | None = None,
    content_weight: float = 0.0,
) -> torch.Tensor:
    """L = Σ_layers L1(out, SDPA(q, k_ref, v_ref).detach()) + λ · Σ_layers L1(q_image, q_content_image).

    The AD term covers every query row, text rows included, as the paper's FLUX code does; the
    reference's keys carry its own RoPE positions (captured from its own pass), so a reference
    of another size works. The content term compares the image tokens' queries only: text rows
    are the prompt's, not the picture's. R references share the keys (joined on the token axis).
    """
    total = torch.zeros((), device=next(iter(target.values())).q.device)
    for position, layer in target.items():
        ref = reference[position]
        total = total + ad_loss_from_output(layer.out, layer.q, ref.k, ref.v)
        if content is not None and content_weight > 0:
            ours, theirs = layer.q[:, :, layer.image], content[position]
            total = total + content_weight * content_loss(ours, theirs.q[:, :, theirs.image])
    return total
