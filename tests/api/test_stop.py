"""A callback that returns False stops the whole call: no further iteration, and no further image
of a several-image call (texture and t2i with num_images); the images made so far come back, the
stopped one saying where it stopped."""

from __future__ import annotations

import json

import pytest

import adcli
from tests.support.batch_helpers import image


@pytest.fixture(scope="module")
def model():
    return adcli.load_model("tiny", device="cpu")


@pytest.fixture(scope="module")
def style(tmp_path_factory):
    return image(tmp_path_factory.mktemp("stop") / "style.png", seed=2)


CALLS = {
    "texture": lambda model, style, **kw: adcli.texture(model, style, num_images=3, iterations=4, size="32x32", **kw),
    "texture-sample": lambda model, style, **kw: adcli.texture(
        model, style, num_images=3, mode="sample", steps=3, ad_iterations=1, size="32x32", **kw),
    "t2i": lambda model, style, **kw: adcli.t2i(model, "a cat", style, num_images=3, steps=3, ad_iterations=1, size="32x32", **kw),
    "t2i-no-ad": lambda model, style, **kw: adcli.t2i(model, "a cat", style, num_images=3, steps=3, ad_iterations=0, size="32x32", **kw),
}


@pytest.mark.parametrize("call", list(CALLS))
def test_stopping_during_the_first_image_makes_no_more_images(model, style, call):
    seen = []

    def stop_at_two(info):
        seen.append(info["step"])
        return info["step"] < 2

    images = CALLS[call](model, style, callback=stop_at_two)
    assert len(images) == 1
    assert seen[-1] == 2 and max(seen) == 2  # nothing ran after the callback said stop
    assert json.loads(images[0].info["adcli"])["stopped_at_step"] == 2


@pytest.mark.parametrize("call", ["texture", "t2i"])
def test_a_callback_that_never_stops_sees_every_image(model, style, call):
    steps = []
    images = CALLS[call](model, style, callback=lambda info: steps.append(info["step"]))
    assert len(images) == 3
    assert all("stopped_at_step" not in json.loads(picture.info["adcli"]) for picture in images)
    assert steps.count(1) == 3  # each image started at step 1


ONE_IMAGE = {
    **{name: lambda model, style, call=call, **kw: call(model, style, **kw)[0] for name, call in CALLS.items()},
    "style-transfer": lambda model, style, **kw: adcli.style_transfer(model, style, style, iterations=4, size="32", **kw),
    "expand": lambda model, style, **kw: adcli.expand(model, style, size=(96, 64), window=8, stride=4, steps=3,
                                                      ad_iterations=1, **kw),
}


@pytest.mark.parametrize("call", list(ONE_IMAGE))
def test_a_stopped_image_is_where_it_stopped_not_the_finished_one(model, style, call):
    """The loop really ends at the stop (a callback merely no longer told would still finish)."""
    finished = ONE_IMAGE[call](model, style, seed=3)
    stopped = ONE_IMAGE[call](model, style, seed=3, callback=lambda info: info["step"] < 2)
    assert stopped.size == finished.size and stopped.tobytes() != finished.tobytes()
