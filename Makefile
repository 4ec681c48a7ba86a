# FCN reproduction toolkit. `make help` lists the targets.
# The Python every target runs (tools/which_python.py): inside a virtual or conda environment,
# that one; otherwise $(VENV)/bin/python, the virtual environment `make install` creates (a
# system Python may refuse pip under PEP 668: Debian 12, Ubuntu 24.04). PYTHON=... sets it.
BASE_PYTHON ?= python3
VENV ?= .venv
ifndef PYTHON
PYTHON := $(shell $(BASE_PYTHON) tools/which_python.py $(VENV))
endif
ifeq ($(PYTHON),)
$(error $(BASE_PYTHON) did not run tools/which_python.py: install Python 3.10+, or name one with BASE_PYTHON=/path/to/python3)
endif
# a target that needs the venv before `make install` made it says so
ifeq ($(PYTHON)$(wildcard $(PYTHON))$(filter install,$(MAKECMDGOALS)),$(VENV)/bin/python)
ifneq ($(filter-out help help-models clean,$(MAKECMDGOALS)),)
$(error the targets run $(PYTHON), which is not there yet: run `make install` first (it creates $(VENV) and installs the toolkit in it), or run make inside your own virtual environment)
endif
endif
VENV_PIP := $(if $(filter $(VENV)/bin/python,$(PYTHON)),$(VENV)/bin/pip)
PYTEST_FLAGS ?= -q
.DEFAULT_GOAL := help
# every model of nets/models.py; `make voc-fcn8s ARGS='--gpu 0'` trains it and its stages
MODELS := voc-fcn32s voc-fcn16s voc-fcn8s voc-fcn8s-atonce voc-fcn-alexnet voc-fcn-googlenet nyud-fcn32s-color nyud-fcn32s-hha nyud-fcn32s-color-d nyud-fcn32s-color-hha nyud-fcn16s-color-hha siftflow-fcn32s siftflow-fcn16s siftflow-fcn8s pascalcontext-fcn32s pascalcontext-fcn16s pascalcontext-fcn8s

help-models:  ## list the model targets: make <model> [ARGS='--gpu 0 --out DIR']
	@echo $(MODELS) | tr ' ' '\n' | sed 's/^/  make /'

$(MODELS):
	$(PYTHON) solve/$(subst -,_,$@).py $(ARGS)

.PHONY: $(MODELS) help-models help install demo test test-caffe caffe test-gpu gpu-check smoke bench bench-small tables weights data nets check-nets proto check-proto lint clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  make %-12s %s\n", $$1, $$2}'

install: $(VENV_PIP)  ## install the toolkit, its test tools, protoc and the ONNX tools (CPU torch 2.13.0) into .venv (or the active environment)
	$(PYTHON) -m pip install -q -e '.[test,proto,export]'

$(VENV)/bin/pip:  # the virtual environment (Debian and Ubuntu: apt-get install python3-venv)
	$(BASE_PYTHON) -m venv $(VENV)

demo:  ## the paper's pipeline in miniature on generated data, CPU: about 3 minutes
	$(PYTHON) -m solve.demo $(ARGS)

test: lint  ## run the size budget and the test suite on the CPU
	$(PYTHON) -m pytest $(PYTEST_FLAGS) -m 'not caffe' tests

caffe:  ## build real BVLC Caffe 9b89154 (CPU, pycaffe) in ~/.cache/fcn-toolkit, or reuse it (CAFFE_SRC=...)
	$(PYTHON) -m backend.caffe_build

test-caffe: caffe  ## against real Caffe: differential cases of every layer and solver, pycaffe's tests, the toolkit on pycaffe
	FCN_REQUIRE_CAFFE=1 $(PYTHON) -m pytest $(PYTEST_FLAGS) -m caffe tests

test-gpu:  ## run the GPU-marked tests (needs CUDA)
	$(PYTHON) -m pytest $(PYTEST_FLAGS) -m gpu tests

bench:  ## engine vs direct PyTorch (NCHW, channels-last) and ONNX Runtime: FCN-32s/16s/8s full and demo size, time and memory (minutes)
	$(PYTHON) benchmarks/fcn_bench.py --repeat 2 $(ARGS)

bench-small: caffe  ## small nets (logistic regression, LeNet) on the engine and on real Caffe: wall time and ratio
	$(PYTHON) benchmarks/small_nets.py $(ARGS)

gpu-check:  ## on a CUDA machine: GPU tests, golden cases on the GPU, bench, demo; one summary
	$(PYTHON) benchmarks/gpu_check.py $(ARGS)

smoke:  ## write a V1 net + caffemodel, upgrade and round-trip them (seconds)
	$(PYTHON) -m caffe_torch.tools.smoke out/smoke

tables:  ## the paper's tables beside this toolkit's numbers (ARGS='--format csv --output t.csv')
	$(PYTHON) -m solve.tables $(ARGS)

weights:  ## download every public caffemodel of weights/manifest.json (several GB)
	$(PYTHON) -m weights.download --all

DATASETS ?= --all
data:  ## download, verify and install the paper's datasets into FCN_DATA (DATASETS='voc sbdd' for some; ARGS='--from DIR')
	$(PYTHON) -m data_layers.fetch $(DATASETS) $(ARGS)

nets:  ## regenerate every model's prototxts and README under nets/
	$(PYTHON) -m nets.generate

check-nets:  ## fail if nets/ differs from what its builders generate
	$(PYTHON) -m nets.generate --check

proto:  ## regenerate caffe_torch/proto/caffe_pb2.py from caffe.proto (needs grpcio-tools)
	$(PYTHON) -m grpc_tools.protoc -I caffe_torch/proto --python_out=caffe_torch/proto \
	  caffe_torch/proto/caffe.proto

check-proto: proto  ## regenerate caffe_pb2.py and fail if it differs from the committed one
	git diff --exit-code caffe_torch/proto/caffe_pb2.py

lint:  ## enforce the size budget: library modules of at most 400 lines
	$(PYTHON) -m caffe_torch.tools.size_budget caffe_torch atomic_files backend benchmarks downloads nets data_layers solve surgery weights

clean:  ## remove caches, outputs and the demo's generated data
	rm -rf out data/demo .pytest_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
