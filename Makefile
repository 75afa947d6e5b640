# mambakit: the two commands that matter are `make demo` and `make test`.
# Both install missing Debian packages, configure and build first.
BUILD   ?= build
JOBS    ?= $(shell nproc)
CMAKE_FLAGS ?=
MAMBAKIT = $(BUILD)/experiments/mambakit

.PHONY: all deps configure build test demo bench data clean

all: build

deps:
	bash tools/install-deps.sh

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

configure: deps $(BUILD)/build.ninja

build: configure
	cmake --build $(BUILD) -j $(JOBS)

# The data every config names: the KJV, the DNA and piano corpora
# (tools/fetch-data.sh), the English corpus of the scaling sweep
# (tools/make-english-corpus.sh: the KJV and perl's manuals), and the KJV's
# BPE tokenizer (quickstart_bpe.yaml), which mambakit itself trains in a second.
KJV_BPE = data/tokenizers/kjv-bpe-1k
data: build
	bash tools/fetch-data.sh
	bash tools/make-english-corpus.sh
	@test -s $(KJV_BPE)/tokenizer.json || \
	  $(MAMBAKIT) tokenizer train --model bpe --vocab 1024 --out $(KJV_BPE) data/kjv.txt

test: build
	cd $(BUILD) && OMP_NUM_THREADS=$(JOBS) ctest --output-on-failure -j 1

# Trains a ~1M-parameter byte-level Mamba on the King James Bible for a few
# minutes (experiments/quickstart.yaml), prints validation bits per byte and a
# generated sample. The run directory is runs/quickstart (replaced each time).
demo: build data
	$(MAMBAKIT) train experiments/quickstart.yaml --set output.overwrite=true
	$(MAMBAKIT) generate runs/quickstart --prompt "And God said" --tokens 300 --temperature 0.8 --seed 1

# The scan on every ISA this CPU runs (with the plain-loop baseline), and
# training tokens/s at one thread and at all of them: the quickstart model,
# then the selective-copying Mamba (experiments/selective_copying_mamba.yaml).
bench: build
	$(BUILD)/bench/bench_selective_scan
	$(MAMBAKIT) bench scan --isa all --threads $(JOBS)
	$(MAMBAKIT) bench train --compare-threads 1,$(JOBS)
	$(MAMBAKIT) bench train --d-model 64 --n-layer 2 --d-state 64 --batch 32 --compare-threads 1,$(JOBS)

clean:
	rm -rf $(BUILD)
