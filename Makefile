# A fresh machine needs only Python 3.10+: `make demo`, `make test` and `make bench` install everything first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The tiny models are bound by Python overhead: one thread is as fast, and does not fight other work.
RUN := OMP_NUM_THREADS=1 $(BIN)/adcli
TINY := --model tiny --size 128x128 --quiet

.PHONY: setup demo test bench clean

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

bench: setup
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) outputs .pytest_cache
