# memeguard: the two commands a newcomer needs are `make run` and `make test`.
# Every target installs what it needs first; nothing is installed by hand.

SHELL := /bin/bash
CARGO ?= cargo
ORT_DIR := .cache/onnxruntime/cpu

.PHONY: run test onnxruntime onnxruntime-gpu setup-test setup-ocr setup-browser clean-cache demo-model

## run: build and start the server on its embedded defaults (http://127.0.0.1:8080)
# A fixed mmap threshold lets glibc return model-sized buffers freed after loading
# (docs/benchmarks.md: steady RSS 1.15 GB -> 0.67 GB for a 484 MB model).
run: onnxruntime setup-ocr
	GLIBC_TUNABLES=glibc.malloc.mmap_threshold=1048576 $(CARGO) run --release -p memeguard -- serve --allow-placeholder

## test: everything CI runs: fmt, clippy (warnings are errors), the whole test suite with
## PostgreSQL started for it and stopped afterwards (scripts/run-tests.sh; under CI=true a
## PostgreSQL that cannot be set up fails the run)
test: onnxruntime setup-test
	CARGO=$(CARGO) scripts/run-tests.sh

## demo-model: retrain the demo package served by `make run` (tiny recipe on synthetic memes,
## about 2 minutes on 2 cores after the release build); the result goes to models/demo/<time stamp>
DEMO_DATA := data/synth-demo
demo-model: onnxruntime
	$(CARGO) build --release -p memeguard-training --bin memeguard-train
	target/release/memeguard-train synth --out $(DEMO_DATA) --train 2048 --dev 256 --test 256 --size 96 --difficulty easy \
	    --captions phrases --caption-scale 0.35 --seed 7 --force
	target/release/memeguard-train finetune --recipe training/recipes/tiny-finetune-multimodal.toml \
	    --set train.epochs=40 --set data.patience=20 \
	    --data $(DEMO_DATA) --out runs/demo --export models/demo/$$(date -u +%Y.%m.%d-%H%M%S)

## onnxruntime: ONNX Runtime 1.31.1 (CPU) from PyPI into .cache/onnxruntime/cpu
onnxruntime:
	@scripts/onnxruntime.sh cpu

## onnxruntime-gpu: the CUDA 13 build and its libraries into .cache/onnxruntime/gpu
onnxruntime-gpu:
	@scripts/onnxruntime.sh gpu

## setup-test: the test-only tools (Python onnx/numpy for reference checks, Tesseract,
## headless Chromium and its WebDriver for the moderators' pages test)
setup-test: setup-ocr setup-browser
	@scripts/setup-test.sh

## setup-ocr: Tesseract OCR and the headers its Rust binding builds against (apt)
setup-ocr:
	@scripts/setup-ocr.sh

## setup-browser: Debian's chromium and chromium-driver (apt)
setup-browser:
	@scripts/setup-browser.sh

clean-cache:
	rm -rf .cache

## bench-venv: the optional benchmark venv .cache/bench-venv with PyTorch (CPU use; the PyPI
## wheel pulls its CUDA libraries, ~3 GB) and torchvision, for
## `cargo bench -p memeguard-training --bench step -- --vs-pytorch`
.PHONY: bench-venv
bench-venv:
	@test -x .cache/bench-venv/bin/python || python3 -m venv .cache/bench-venv
	.cache/bench-venv/bin/pip install -q torch torchvision
