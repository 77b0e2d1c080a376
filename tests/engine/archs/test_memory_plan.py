"""The memory plan for FLUX/SD3 runs: its decisions for 8, 12, 16, 24 and 80 GB, and its one line."""

from __future__ import annotations

import pytest

from adcli.engine.archs.memory_plan import ModelSizes, gb, plan_memory, transformer_sizes

FLUX_512 = transformer_sizes("flux", 512, 512)


def test_sizes_of_flux_at_512():
    """1024 image tokens + 512 text tokens, 3072 wide, 57 blocks; 2 bytes a value."""
    tensor_gb = 1536 * 3072 * 2 / 1e9
    assert FLUX_512.activations == pytest.approx(tensor_gb * 30 * 57)  # ≈ 16 GB kept for the backward
    assert FLUX_512.checkpointed_activations == pytest.approx(tensor_gb * (57 + 30))  # inputs + one block
    assert FLUX_512.transformer == pytest.approx(23.8) and FLUX_512.blocks == 57


def flags(plan) -> tuple:
    return (plan.text_encoders_off_gpu, plan.checkpointing, plan.vae_tiling, plan.group_offload, plan.suggest_quantize)


@pytest.mark.parametrize(("free_gb", "quantize", "expected"), [
    # FLUX.1-dev, bf16 weights (23.8 GB): only an 80 GB card holds it as it is
    (80, None, (False, False, False, False, None)),
    (24, None, (True, True, True, True, "int8")),  # 21.6 GB usable < 23.8: stream, and say int8 fits
    (16, None, (True, True, True, True, "int8")),  # int8 (12.6) + checkpointed activations fit 14.4
    (12, None, (True, True, True, True, "nf4")),  # int8 does not fit 10.8, nf4 (6.7) does
    (8, None, (True, True, True, True, None)),  # even nf4 + activations (7.6) exceed 7.2: streaming only
    # already quantized: no streaming where the quantized weights fit
    (24, "int8", (True, True, True, False, None)),  # 12.6 + 16 GB of activations > 21.6: checkpointing
    (16, "int8", (True, True, True, False, None)),
    (12, "nf4", (True, True, True, False, None)),
    (8, "nf4", (True, True, True, True, None)),
])
def test_flux_dev_at_512(free_gb, quantize, expected):
    plan = plan_memory(free_gb, FLUX_512, quantize)
    assert flags(plan) == expected
    assert plan.expected_gb <= free_gb * 0.9 or plan.group_offload


def test_sd35_medium_at_1024_fits_8_gb_with_checkpointing():
    sizes = transformer_sizes("sd3.5-medium", 1024, 1024, text_tokens=77 + 256)
    assert flags(plan_memory(8, sizes, "int8")) == (True, True, True, False, None)
    assert flags(plan_memory(80, sizes)) == (False, False, False, False, None)


def test_each_step_is_taken_only_when_the_previous_does_not_fit():
    """Weights 10, encoders 10, VAE 1, activations 10 (1 checkpointed), 10 blocks; 90 % of the free GB usable."""
    sizes = ModelSizes(transformer=10, text_encoders=10, vae=1, activations=10, checkpointed_activations=1, blocks=10)
    budgets = {
        40: (False, False, False, False, None),  # 31 ≤ 36
        34: (True, False, False, False, None),  # 31 > 30.6; without the encoders 21
        14: (True, True, True, False, None),  # 21 > 12.6; checkpointed 12
        10: (True, True, True, True, "int8"),  # 12 > 9: stream; int8 5.3 + 2 fits
        6: (True, True, True, True, "nf4"),  # int8 7.3 > 5.4; nf4 2.8 + 2 fits
        4: (True, True, True, True, None),  # nothing fits 3.6 but streaming (2 blocks: 2 + 2)
    }
    for free_gb, expected in budgets.items():
        plan = plan_memory(free_gb, sizes)
        assert flags(plan) == expected, free_gb
    assert plan_memory(4, sizes).expected_gb == pytest.approx(2 * 10 / 10 + 1 + 1)


def test_the_line_says_what_was_chosen():
    line = plan_memory(16, FLUX_512).describe()
    assert line.startswith("16 GB free: text encoders off the GPU after encoding, gradient checkpointing, tiled VAE, "
                           "transformer blocks streamed from CPU memory (slow)")
    assert line.endswith("; int8 weights would fit without streaming") and "\n" not in line
    assert plan_memory(80, FLUX_512).describe().startswith("80 GB free: everything fits on the GPU (about 50 GB)")


@pytest.mark.parametrize("value, shown", [(80.0, "80"), (12.4, "12"), (8.0, "8"), (7.96, "8"), (1.25, "1.2"),
                                          (0.5, "0.5"), (0.0113, "0.011")])
def test_gigabytes_read_as_a_person_writes_them(value, shown):
    assert gb(value) == shown
