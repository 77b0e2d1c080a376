"""The Attention Distillation losses, as pure functions of tensors (no model, no I/O).

Every tensor is one self-attention layer, shaped ``(batch, heads, tokens, head_dim)``.
The engine sums these over the selected layers: ``L = Σ ad_loss + λ · Σ content_loss``
(paper Eqs. 3–5). The ``*_per_item`` forms give each item of a batch its own loss ``(batch,)``:
a batch of images optimized together is a sum of independent problems, and each image's
progress is reported as its own.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def concat_references(ref: torch.Tensor) -> torch.Tensor:
    """Join R references along the token axis: ``(R, H, M, D)`` → ``(1, H, R·M, D)``.

    This is how the paper distils several exemplars at once: every target query can attend to
    the keys of every reference.
    """
    refs, heads, tokens, dim = ref.shape
    return ref.permute(1, 0, 2, 3).reshape(1, heads, refs * tokens, dim)


def _wide(x: torch.Tensor) -> torch.Tensor:
    """Half-precision features are compared in fp32; fp32/fp64 stay as they are."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _attention_mask(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """Turn a boolean ``(N, R·M)`` mask into SDPA's additive form (−inf where attention is barred).

    A query row with no allowed key would give NaN; such rows fall back to attending to all keys.
    """
    if mask is None:
        return None
    mask = mask.to(torch.bool)
    mask = mask | ~mask.any(dim=-1, keepdim=True)
    additive = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    return additive.masked_fill(~mask, float("-inf"))


def reference_attention(
    q: torch.Tensor, ref_k: torch.Tensor, ref_v: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """The "ideal" output ``softmax(q ref_kᵀ/√d) ref_v`` (KV-injection), detached.

    q: ``(B, H, N, D)``; ref_k, ref_v: ``(R, H, M, D)``, concatenated to ``R·M`` keys shared by
    every target in the batch; mask: optional boolean ``(N, R·M)``, True where query j may see key i.
    """
    with torch.no_grad():
        keys = concat_references(ref_k.detach())
        values = concat_references(ref_v.detach())
        batch = q.shape[0]
        keys = keys.expand(batch, -1, -1, -1)
        values = values.expand(batch, -1, -1, -1)
        return F.scaled_dot_product_attention(
            q.detach(), keys, values, attn_mask=_attention_mask(mask, q.dtype)
        )


def ad_loss_from_output(
    out: torch.Tensor,
    q: torch.Tensor,
    ref_k: torch.Tensor,
    ref_v: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """AD loss when the target's own attention output ``out = SDPA(q, k, v)`` is already known.

    The engine's capture processor computes ``out`` in the forward pass anyway, so reusing it
    saves one attention per layer. Gradients flow through ``out`` only.
    """
    ideal = reference_attention(q, ref_k, ref_v, mask)
    return (_wide(out) - _wide(ideal)).abs().mean()


def _l1_per_item(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``mean |a − b|`` over every axis but the first: (B, …) → (B,)."""
    return (a - b).abs().flatten(1).mean(dim=1)


def ad_loss_per_item(
    out: torch.Tensor,
    q: torch.Tensor,
    ref_k: torch.Tensor,
    ref_v: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """:func:`ad_loss_from_output` for each target item on its own: ``(B,)``, whose mean is the batch's loss."""
    ideal = reference_attention(q, ref_k, ref_v, mask)
    return _l1_per_item(_wide(out), _wide(ideal))


def ad_loss(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    ref_k: torch.Tensor,
    ref_v: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Attention Distillation loss (paper Eq. 3): ``mean |SDPA(q, k, v) − SDPA(q, ref_k, ref_v)|``.

    q, k, v: the target's ``(B, H, N, D)``. ref_k, ref_v: ``(R, H, M, D)``, R references joined
    along the token axis (R·M keys) and shared by every target. mask: optional boolean
    ``(N, R·M)``, True where target query j may attend to reference key i (masked AD, Eq. 11).
    The reference term is detached: gradients reach only the target's own attention output.
    """
    own = F.scaled_dot_product_attention(q, k, v)
    return ad_loss_from_output(own, q, ref_k, ref_v, mask)


def content_loss(q: torch.Tensor, q_content: torch.Tensor) -> torch.Tensor:
    """Content loss (paper Eq. 4): ``mean |q − q_content|``, with ``q_content`` detached.

    q: ``(B, H, N, D)``; q_content: ``(B, H, N, D)`` or ``(1, H, N, D)`` shared by the batch.
    """
    return (_wide(q) - _wide(q_content.detach())).abs().mean()


def content_loss_per_item(q: torch.Tensor, q_content: torch.Tensor) -> torch.Tensor:
    """:func:`content_loss` for each item of ``q`` on its own: ``(B,)``, whose mean is the batch's loss."""
    difference = _wide(q) - _wide(q_content.detach())  # (B, H, N, D); a shared q_content broadcasts
    return difference.abs().flatten(1).mean(dim=1)
