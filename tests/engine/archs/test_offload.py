"""Gradient checkpointing and group offloading of FLUX/SD3 transformers under AD's backward.

A CPU has no second device to offload to, so :func:`weights_leave_after_forward` makes offloading
observable: it wraps diffusers' group offload/onload so that an offloaded group's parameters hold
NaN (``param.data = …``, as a move to another device rebinds them) until the group is onloaded.
A gradient computed with offloaded weights would then be NaN.
"""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from diffusers.hooks.group_offloading import ModuleGroup

from adcli.engine.archs.offload import block_offloading, enable_block_offloading, enable_checkpointing, transformer_blocks
from adcli.engine.archs.tiny_transformers import build_tiny_flux_components, build_tiny_sd3_components
from tests.support.transformer_inputs import input_gradient, inputs_for, run

CPU = torch.device("cpu")
BUILD = {"flux": build_tiny_flux_components, "sd3": build_tiny_sd3_components}


@pytest.fixture
def weights_leave_after_forward(monkeypatch):
    """Counts onloads per group (keyed by the group's modules) and the most groups onloaded at once;
    offloaded groups' parameters hold NaN until onloaded again."""
    stash: dict[int, list] = {}
    onloads: Counter = Counter()
    onload, offload = ModuleGroup.onload_, ModuleGroup.offload_
    onloads.most_onloaded = 0
    groups: dict[int, object] = {}

    def onload_(group):
        onload(group)
        groups[id(group)] = group
        onloads[tuple(id(m) for m in group.modules)] += 1
        for param, data in stash.pop(id(group), []):
            param.data = data
        onloads.most_onloaded = max(onloads.most_onloaded, len(groups) - len(stash))

    def offload_(group):
        offload(group)
        groups[id(group)] = group
        if id(group) in stash:  # already out
            return
        # a group may list a module's parameters twice (SD3's top-level group does)
        params = list(dict.fromkeys([p for m in group.modules for p in m.parameters()] + list(group.parameters)))
        stash[id(group)] = [(p, p.data) for p in params]
        for param in params:
            param.data = torch.full_like(param.data, float("nan"))

    def real_values_back() -> None:
        """A real offload keeps the values in CPU memory; the emulation's NaN stand-ins are swapped back."""
        for pairs in stash.values():
            for param, data in pairs:
                param.data = data
        stash.clear()

    monkeypatch.setattr(ModuleGroup, "onload_", onload_)
    monkeypatch.setattr(ModuleGroup, "offload_", offload_)
    onloads.real_values_back = real_values_back
    onloads.offloaded = lambda: len(stash)
    return onloads


def block_calls(transformer) -> Counter:
    """How often each transformer block's forward runs (hooks on every block)."""
    calls: Counter = Counter()
    for index, block in enumerate(transformer.transformer_blocks):
        block.register_forward_pre_hook(lambda module, args, index=index: calls.update([index]))
    return calls


@pytest.mark.parametrize("arch", ["flux", "sd3"])
def test_checkpointing_gives_the_same_latent_gradient(arch):
    transformer = BUILD[arch]()["transformer"]
    inputs = inputs_for(transformer)
    out, grad = input_gradient(transformer, inputs)
    calls = block_calls(transformer)
    restore = enable_checkpointing(transformer)
    checkpointed_out, checkpointed_grad = input_gradient(transformer, inputs)
    assert set(calls.values()) == {2}  # every block ran again in the backward
    assert torch.equal(checkpointed_grad, grad) and torch.equal(checkpointed_out, out)
    restore()
    assert not transformer.is_gradient_checkpointing


@pytest.mark.parametrize("arch", ["flux", "sd3"])
def test_block_offloading_streams_weights_through_forward_and_backward(arch, weights_leave_after_forward):
    transformer = BUILD[arch]()["transformer"]
    inputs = inputs_for(transformer)
    out, grad = input_gradient(transformer, inputs)
    blocks = transformer_blocks(transformer)
    with block_offloading(transformer, device=CPU):
        assert torch.isnan(blocks[1].attn.to_q.weight).all() and not torch.isnan(transformer.proj_out.weight).any()
        offloaded_out, offloaded_grad = input_gradient(transformer, inputs)
        assert weights_leave_after_forward.offloaded() == len(blocks)  # all out again after the backward
        # at most two blocks on the device at once (of 24 or 57): in the backward a block's weights
        # leave when its input gradient is done, which can come just after the next block came in
        assert weights_leave_after_forward.most_onloaded <= 2
    assert torch.equal(offloaded_grad, grad) and torch.equal(offloaded_out, out)
    assert set(weights_leave_after_forward.values()) == {2}  # each block in for its forward and its backward
    # restored: no hooks, no instance forward, weights where they were, same outputs
    weights_leave_after_forward.real_values_back()
    assert all("forward" not in b.__dict__ and "_diffusers_hook" not in b.__dict__ for b in blocks)
    assert not transformer.is_gradient_checkpointing
    assert torch.equal(run(transformer, inputs), out.detach())


@pytest.mark.parametrize("early_stop", [True, False])
def test_diffusers_offloading_as_documented_fails_ad(weights_leave_after_forward, early_stop):
    """Why :func:`block_offloading` hooks the backward: diffusers' own group offloading with checkpointing
    either leaves every recomputed block on the device (torch's early stop, its default, skips the
    offload after the recomputation) or, without early stop, backpropagates through offloaded weights."""
    transformer = BUILD["sd3"]()["transformer"]
    inputs = inputs_for(transformer)
    _, grad = input_gradient(transformer, inputs)
    transformer.enable_group_offload(onload_device=CPU, offload_device=CPU, offload_type="block_level",
                                     num_blocks_per_group=1)
    transformer.enable_gradient_checkpointing()
    with torch.utils.checkpoint.set_checkpoint_early_stop(early_stop):
        _, offloaded_grad = input_gradient(transformer, inputs)
    if early_stop:
        assert weights_leave_after_forward.offloaded() <= 1  # every block's weights still on the device
    else:
        assert torch.isnan(offloaded_grad).any()  # computed with weights that had left


def test_without_checkpointing_offloaded_weights_are_still_needed(weights_leave_after_forward):
    """Offloading alone: the backward reads weights that the forward's hooks sent out (SD3's RMSNorm
    scales and patch convolution are saved by autograd as themselves): NaN here, on a GPU a device
    mismatch — and the linear layers' weights stay allocated through autograd's views anyway."""
    transformer = BUILD["sd3"]()["transformer"]
    inputs = inputs_for(transformer)
    transformer.enable_group_offload(onload_device=CPU, offload_device=CPU, offload_type="block_level",
                                     num_blocks_per_group=1)
    _, offloaded_grad = input_gradient(transformer, inputs)
    assert torch.isnan(offloaded_grad).any()


def test_restore_puts_back_a_users_checkpointing_and_placement():
    transformer = BUILD["sd3"]()["transformer"]
    transformer.enable_gradient_checkpointing()
    restore = enable_block_offloading(transformer, device=CPU)
    restore()
    assert transformer.is_gradient_checkpointing
    assert {p.device for p in transformer.parameters()} == {CPU}
