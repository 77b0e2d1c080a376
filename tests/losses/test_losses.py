"""The AD and content losses against direct per-head computations, and their gradients."""

from __future__ import annotations

import pytest
import torch

from adcli.losses import ad_loss, concat_references, content_loss, reference_attention


def attention(q, k, v, mask=None):
    """softmax(q kᵀ/√d) v for one head, written out."""
    scores = q @ k.T / q.shape[-1] ** 0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def direct_ad_loss(q, k, v, ref_k, ref_v, mask=None):
    batch, heads, tokens, dim = q.shape
    keys = torch.cat(list(ref_k), dim=1)  # R × (H, M, D) → (H, R·M, D)
    values = torch.cat(list(ref_v), dim=1)
    total, count = 0.0, 0
    for b in range(batch):
        for h in range(heads):
            own = attention(q[b, h], k[b, h], v[b, h])
            ideal = attention(q[b, h], keys[h], values[h], mask)
            total = total + (own - ideal).abs().sum()
            count += own.numel()
    return total / count


def tensors(batch=2, heads=3, tokens=5, refs=2, ref_tokens=4, dim=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(batch, heads, tokens, dim, generator=g, dtype=torch.float64) for _ in range(3))
    ref_k, ref_v = (torch.randn(refs, heads, ref_tokens, dim, generator=g, dtype=torch.float64) for _ in range(2))
    return q, k, v, ref_k, ref_v


def test_ad_loss_matches_direct_computation():
    q, k, v, ref_k, ref_v = tensors()
    assert torch.allclose(ad_loss(q, k, v, ref_k, ref_v), direct_ad_loss(q, k, v, ref_k, ref_v), atol=1e-10)


def test_ad_loss_is_zero_when_reference_is_the_target_itself():
    q, k, v, _, _ = tensors(batch=1)
    assert ad_loss(q, k, v, k, v).item() == pytest.approx(0.0, abs=1e-12)


def test_multi_reference_concatenates_along_tokens():
    q, k, v, ref_k, ref_v = tensors(refs=3, ref_tokens=4)
    joined = concat_references(ref_k)
    assert joined.shape == (1, 3, 12, 8)
    assert torch.equal(joined[0, :, 4:8], ref_k[1])
    one_big = ad_loss(q, k, v, joined, concat_references(ref_v))
    assert torch.allclose(ad_loss(q, k, v, ref_k, ref_v), one_big)
    # not the same as averaging the per-reference losses: every query sees all 12 keys at once
    separate = sum(ad_loss(q, k, v, ref_k[i : i + 1], ref_v[i : i + 1]) for i in range(3)) / 3
    assert not torch.allclose(one_big, separate)


def test_masked_ad_loss_matches_direct_computation():
    q, k, v, ref_k, ref_v = tensors(tokens=5, refs=2, ref_tokens=4)
    g = torch.Generator().manual_seed(3)
    mask = torch.rand(5, 8, generator=g) > 0.5
    mask[:, 0] = True  # every query may see at least one key
    assert torch.allclose(ad_loss(q, k, v, ref_k, ref_v, mask), direct_ad_loss(q, k, v, ref_k, ref_v, mask))


def test_mask_gives_zero_weight_to_barred_keys():
    q, _, _, ref_k, _ = tensors(batch=1, tokens=4, refs=1, ref_tokens=6, dim=6)
    mask = torch.zeros(4, 6, dtype=torch.bool)
    mask[:, :3] = True
    # values are one-hot per key, so the output is the attention weight of each key
    eye = torch.eye(6, dtype=q.dtype).expand(1, 3, 6, 6)
    weights = reference_attention(q, ref_k, eye, mask)
    assert torch.all(weights[..., 3:] == 0)
    assert torch.allclose(weights.sum(-1), torch.ones_like(weights.sum(-1)))


def test_ad_loss_gradient_flows_only_through_the_target_output():
    q, k, v, ref_k, ref_v = tensors(batch=1)
    q.requires_grad_(True), k.requires_grad_(True), v.requires_grad_(True)
    ref_k.requires_grad_(True), ref_v.requires_grad_(True)
    ad_loss(q, k, v, ref_k, ref_v).backward()
    assert ref_k.grad is None and ref_v.grad is None
    assert k.grad is not None and v.grad.abs().sum() > 0

    # the same gradient as differentiating the direct formula with the ideal output held fixed
    q2, k2, v2 = (x.detach().clone().requires_grad_(True) for x in (q, k, v))
    keys = torch.cat(list(ref_k.detach()), dim=1)
    values = torch.cat(list(ref_v.detach()), dim=1)
    total = 0.0
    for h in range(q2.shape[1]):
        ideal = attention(q2[0, h].detach(), keys[h], values[h])
        total = total + (attention(q2[0, h], k2[0, h], v2[0, h]) - ideal).abs().sum()
    (total / (q2.shape[1] * q2.shape[2] * q2.shape[3])).backward()
    for mine, direct in ((q, q2), (k, k2), (v, v2)):
        assert torch.allclose(mine.grad, direct.grad, atol=1e-10)


def test_content_loss_value_and_gradient():
    q, _, _, _, _ = tensors()
    target = torch.randn_like(q).requires_grad_(True)
    q = q.requires_grad_(True)
    loss = content_loss(q, target)
    assert loss.item() == pytest.approx((q - target).abs().mean().item())
    loss.backward()
    assert target.grad is None
    assert torch.allclose(q.grad, torch.sign(q - target).detach() / q.numel())


def test_content_loss_broadcasts_one_content_over_a_batch():
    q, _, _, _, _ = tensors(batch=3)
    content = q[:1].clone()
    assert content_loss(q, content).item() == pytest.approx((q - content).abs().mean().item())


def test_a_query_with_no_allowed_key_attends_to_every_key():
    """Masked AD where a target label has no reference token at a layer's grid: that query row
    falls back to plain attention over all keys (never NaN, never an all-zero output)."""
    q, k, v, ref_k, ref_v = tensors(tokens=5, refs=2, ref_tokens=4)
    mask = torch.rand(5, 8, generator=torch.Generator().manual_seed(3)) > 0.5
    mask[:, 0] = True
    mask[2] = False  # query 2: no key of its label
    fallback = mask.clone()
    fallback[2] = True
    assert torch.allclose(ad_loss(q, k, v, ref_k, ref_v, mask), direct_ad_loss(q, k, v, ref_k, ref_v, fallback), atol=1e-10)
    ideal = reference_attention(q, ref_k, ref_v, mask)
    assert torch.allclose(ideal[:, :, 2], reference_attention(q, ref_k, ref_v)[:, :, 2], atol=1e-10)
