"""A pipeline handed to ``adcli.from_pipe`` computes exactly what the same model loaded by adcli
computes, for the optimization commands and the sampling ones (which also use the pipeline's
noise schedule), on SD1.5 and SDXL."""

from __future__ import annotations

import numpy as np
import pytest

import adcli
from adcli.engine.tiny import tiny_pipeline
from tests.support.batch_helpers import image

CALLS = {
    "style-transfer": lambda model, files: adcli.style_transfer(model, files["content"], files["style"], iterations=3, size="32"),
    "texture-sample": lambda model, files: adcli.texture(
        model, files["style"], mode="sample", steps=3, ad_iterations=1, size="32x32", seed=1)[0],
    "t2i": lambda model, files: adcli.t2i(model, "a cat", files["style"], steps=3, ad_iterations=1, size="32x32", seed=2)[0],
    "expand": lambda model, files: adcli.expand(model, files["style"], size=(96, 64), window=8, stride=4, steps=2, ad_iterations=1),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pipe")
    return {"content": image(folder / "content.png", 1, (48, 32)), "style": image(folder / "style.png", 2)}


@pytest.fixture(scope="module", params=["tiny", "tiny-sdxl"], ids=["sd15", "sdxl"])
def models(request):
    return adcli.from_pipe(tiny_pipeline(request.param)), adcli.load_model(request.param, device="cpu")


@pytest.mark.parametrize("call", list(CALLS))
def test_from_pipe_gives_the_pixels_of_load_model(models, files, call):
    borrowed, loaded = models
    assert np.array_equal(np.asarray(CALLS[call](borrowed, files)), np.asarray(CALLS[call](loaded, files)))


def test_an_sdxl_pipeline_serves_new_prompts_call_after_call(files):
    """transformers hooks a text encoder for its hidden states on the first call that asks for them;
    the session that gives the pipeline back removes hooks it added, and must let them be added
    again (it once left the encoder marked as hooked with no hooks: the second prompt failed)."""
    pipe = tiny_pipeline("tiny-sdxl")
    model = adcli.from_pipe(pipe)
    for prompt in ("a cat", "a dog"):
        assert adcli.t2i(model, prompt, files["style"], steps=1, ad_iterations=0, size="32x32")[0].size == (32, 32)
    ids = pipe.tokenizer(["a bird"], padding="max_length", max_length=pipe.tokenizer.model_max_length,
                         return_tensors="pt").input_ids
    assert len(pipe.text_encoder(ids, output_hidden_states=True).hidden_states) > 1  # the user's own calls still work
