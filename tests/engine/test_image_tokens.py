"""Feature records say which rows are image tokens: masks act on image tokens only (text tokens of a
joint transformer sequence stay unmasked) and the content loss compares image-token queries only.
In a UNet every row is an image token and nothing changes."""

from __future__ import annotations

import torch

from adcli.engine.attention import LayerFeatures
from adcli.engine.features import distillation_losses, sequence_mask


def _layer(q: torch.Tensor, text: slice, image: slice, grid=(2, 2)) -> LayerFeatures:
    return LayerFeatures(q=q, k=q.clone(), v=q.clone(), out=q.clone(), grid=grid, text=text, image=image)


def test_a_unet_layer_keeps_its_mask():
    q = torch.randn(1, 1, 4, 2)
    layer = LayerFeatures(q=q, k=q, v=q, out=q, grid=(2, 2))
    mask = torch.eye(4, dtype=torch.bool)
    assert layer.all_image and layer.image_tokens == 4
    assert sequence_mask(mask, layer, layer) is mask


def test_text_rows_and_columns_are_unmasked_around_the_image_block():
    """[text, text, image×4] (FLUX order) against a reference [image×4, text] (SD3 order), by hand."""
    target = _layer(torch.randn(1, 1, 6, 2), text=slice(0, 2), image=slice(2, 6))
    reference = _layer(torch.randn(1, 1, 5, 2), text=slice(4, 5), image=slice(0, 4))
    image_mask = torch.tensor([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]], dtype=torch.bool)
    full = sequence_mask(image_mask, target, reference)
    expected = torch.ones(6, 5, dtype=torch.bool)
    expected[2:6, 0:4] = image_mask
    assert torch.equal(full, expected)


def test_two_references_each_get_their_image_block():
    target = _layer(torch.randn(1, 1, 5, 2), text=slice(0, 1), image=slice(1, 5))
    reference = _layer(torch.randn(1, 1, 5, 2), text=slice(0, 1), image=slice(1, 5))
    image_mask = torch.zeros(4, 8, dtype=torch.bool)
    image_mask[:, 5] = True  # only the second reference's second image token
    full = sequence_mask(image_mask, target, reference)  # keys: [ref0: text, img×4, ref1: text, img×4]
    assert full.shape == (5, 10)
    assert full[0].all() and full[1:, [0, 5]].all()  # text query row, and both references' text keys
    assert full[1:, 7].all() and not full[1:, [1, 2, 3, 4, 6, 8, 9]].any()


def test_the_content_loss_reads_image_queries_only():
    """Targets and content agree on image rows and differ on text rows: the content term is 0.
    Unequal image rows: λ·mean|Δ| over the image rows only, by hand (Δ = 1 on 4 of 8 values)."""
    q = torch.zeros(1, 1, 6, 2)
    content_q = q.clone()
    content_q[:, :, :2] = 5.0  # text rows differ
    target = {0: _layer(q, slice(0, 2), slice(2, 6))}
    reference = {0: _layer(q, slice(0, 2), slice(2, 6))}
    content = {0: _layer(content_q, slice(0, 2), slice(2, 6))}
    ad_only = distillation_losses(target, reference)
    torch.testing.assert_close(distillation_losses(target, reference, content, content_weight=0.5), ad_only)
    content_q[:, :, 2:4] = 1.0  # two image rows × 2 dims differ by 1: mean over 4 rows × 2 = 0.5
    torch.testing.assert_close(distillation_losses(target, reference, content, content_weight=0.5), ad_only + 0.25)
