# A fresh machine needs only Python 3.10+: `make demo`, `make test` and `make bench` install everything first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The tiny models are bound by Python overhead: one thread is as fast, and does not fight other work.
RUN := OMP_NUM_THREADS=1 $(BIN)/adcli
TINY := --model tiny --size 128x128 --quiet

.PHONY: setup demo test quick bench gpu-check gpu-wheels clean

# `make gpu-check`: on a CUDA machine its own python3 (CUDA torch already installed; this never installs
# torch), with the wheels from `make gpu-wheels` unpacked into $(GPU_SITE) when .whl/ exists;
# `make gpu-check DEVICE=cpu`: the same steps at tiny sizes in this checkout's venv (what CI runs).
DEVICE ?= auto
WHEELS := .whl
GPU_SITE := /tmp/adcli-gpu-site
# What the GPU machine's image lacks or holds at another version (see README, GPU check); pure Python but pydantic_core
# and torchao (int8 weights; 0.18 needs torch >= 2.11, the machine's). gguf: the GGUF rows. bitsandbytes (nf4) is left
# out: its 43 MB wheel would leave the working tree under 8 MiB of the 64 MiB the device tool carries.
GPU_WHEEL_SPECS := diffusers==0.42.1 importlib_metadata==10.2.0 lazy-importer==0.1.0 typer==0.29.2 pydantic==2.14.4 \
	pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 typing_extensions==4.16.0 \
	gguf==0.19.0 torchao==0.18.0
ifeq ($(DEVICE),cpu)
CHECK_PYTHON := $(BIN)/python
CHECK_NEEDS := setup
else
CHECK_PYTHON := python3
CHECK_NEEDS :=
endif

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first and pinned: this takes the CPU wheel on a machine without CUDA and the
	# default (CUDA) build on a GPU workstation; an unpinned torch would pull a newer CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

# Rerunnable: each command replaces its own outputs (--overwrite), so a second run leaves no NAME-1.png copies.
demo: setup
	mkdir -p outputs
	# style and appearance transfer, texture by optimization (Algorithm 1)
	$(RUN) style-transfer samples/content/astronaut.jpg --style samples/style/hubble.jpg --model tiny --size 128 --quiet --iterations 100 --animation outputs/astronaut_hubble.webp -o outputs/ --overwrite
	$(RUN) appearance samples/content/coffee.jpg --appearance samples/style/gravel.jpg $(TINY) --iterations 100 -o outputs/ --overwrite
	$(RUN) texture --reference samples/style/brick.jpg $(TINY) --iterations 100 -o outputs/ --overwrite
	# AD-guided sampling (Algorithm 2): texture, and text-to-image on the tiny SDXL model
	$(RUN) texture --reference samples/style/brick.jpg --mode sample $(TINY) --steps 20 -o outputs/brick_sampled.png --overwrite
	$(RUN) t2i "a lighthouse at dusk" --style samples/style/hubble.jpg --model tiny-sdxl --steps 20 --quiet -o outputs/ --overwrite
	# masked synthesis from label maps; a seamless texture and its 2x2 preview
	$(RUN) texture --reference samples/masks/source_texture.png --source-mask samples/masks/source_labels.png --target-mask samples/masks/target_labels.png --model tiny --size 128x128 --iterations 100 --quiet -o outputs/ --overwrite
	$(RUN) texture --reference samples/style/grass.jpg --tile xy $(TINY) --iterations 100 -o outputs/grass_tiled.png --overwrite
	$(RUN) tile-preview outputs/grass_tiled.png -o outputs/grass_tiled_2x2.png --overwrite
	# texture expansion to a wide panorama (MultiDiffusion windows)
	$(RUN) expand --reference samples/style/grass.jpg --model tiny --size 256x128 --window 8 --steps 10 --quiet -o outputs/grass_expanded.png --overwrite
	# FLUX.1 and SD3.5 (tiny models with their real block layouts): text-to-image on FLUX.1-dev's defaults
	# (guidance 3.5, 2 AD iterations at lr 0.01, the last 7 attention layers), style transfer on SD3.5 Medium's layout
	$(RUN) t2i "a lighthouse at dusk" --style samples/style/hubble.jpg --model tiny-flux --size 128x128 --steps 10 --quiet -o outputs/lighthouse_flux.png --overwrite
	$(RUN) style-transfer samples/content/chelsea.jpg --style samples/style/hubble.jpg --model tiny-sd3 --size 128 --iterations 50 --quiet -o outputs/chelsea_sd35.png --overwrite
	# VAE decoder fine-tuning, then decoding a texture with it
	$(RUN) finetune-vae samples/style/brick.jpg --model tiny --steps 30 --crop-size 128 -o outputs/brick-vae --overwrite
	$(RUN) texture --reference samples/style/brick.jpg --vae outputs/brick-vae $(TINY) --iterations 50 -o outputs/brick_finetuned_vae.png --overwrite
	# a batch: every content x every style, named by a template, then resumed (all skipped)
	$(RUN) style-transfer samples/content/ --style samples/style/ --model tiny --size 64x64 --iterations 20 --quiet --name '{style}/{content}' --batch-size 4 --report outputs/batch_report.html -o outputs/batch/ --overwrite
	$(RUN) style-transfer samples/content/ --style samples/style/ --model tiny --size 64x64 --iterations 20 --quiet --name '{style}/{content}' --resume -o outputs/batch/
	$(RUN) info outputs/batch/hubble/chelsea.png
	# a contact sheet of that batch (contents down, styles across, the inputs as headers) beside its HTML report
	$(RUN) sheet outputs/batch/ -o outputs/batch_sheet.png --overwrite
	@echo "demo images are in outputs/: open outputs/batch_report.html and outputs/batch_sheet.png (tiny random models draw noise: real results need the SD weights)"

test: setup
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q

# A contributor's loop: every test but the slow ones and those that start processes (under 3 minutes
# on a 2-core CPU). `make test` still runs everything; add `ARGS=tests/engine` to narrow it further.
quick: setup
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -m "not slow and not subprocess" $(ARGS)

bench: setup
	$(BIN)/python -m benchmarks.run

gpu-check: $(CHECK_NEEDS)
	@if [ "$(DEVICE)" != cpu ] && [ -d $(WHEELS) ]; then \
		$(CHECK_PYTHON) -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
			--target $(GPU_SITE) $(WHEELS)/*.whl; fi
	PYTHONPATH=$(GPU_SITE):. $(CHECK_PYTHON) -m benchmarks.gpu_check --device $(DEVICE)

# Wheels for the GPU machine's Python 3.12 (no network there); they travel in `carry` (64 MiB in all).
gpu-wheels:
	rm -rf $(WHEELS)
	$(PYTHON) -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
		-d $(WHEELS) $(GPU_WHEEL_SPECS)
	@du -sk $(WHEELS) | awk '{ printf "$(WHEELS)/: %.1f MiB of the 64 MiB the device tool carries\n", $$1 / 1024; \
		if ($$1 > 48 * 1024) { print "too large: leave room for the working tree"; exit 1 } }'

clean:
	rm -rf $(VENV) outputs .pytest_cache $(WHEELS)
