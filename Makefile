# mambakit: the two commands that matter are `make demo` and `make test`.
# Both install missing Debian packages, configure and build first.
BUILD   ?= build
JOBS    ?= $(shell nproc)
CMAKE_FLAGS ?=
MAMBAKIT = $(BUILD)/experiments/mambakit

.PHONY: all deps configure build test demo bench data clean sanitize sanitize-ci fuzz

# make sanitize: the whole test suite built with ASan + UBSan (CPU only).
SAN_BUILD ?= build-sanitize
# make fuzz: the libFuzzer harnesses (clang), each run FUZZ_SECONDS.
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 120
# Any report fails the test that triggered it: ASan and UBSan abort, LSan
# fails the exit status; tools/*.supp lists the third-party reports ignored
# (and why).
SAN_ASAN = detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1
SAN_REST = LSAN_OPTIONS=suppressions=$(CURDIR)/tools/lsan.supp:print_suppressions=0 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:suppressions=$(CURDIR)/tools/ubsan.supp
SAN_ENV = ASAN_OPTIONS=$(SAN_ASAN) $(SAN_REST)
# The two-rank tests (DataParallel.*) with the full unwinder: the
# frame-pointer one stops in OpenMPI's libraries (built without frame
# pointers), leaving one-frame leak stacks that no suppression can attribute.
# Only there: it makes allocation-heavy tests about ten times slower.
SAN_MPI_ENV = ASAN_OPTIONS=$(SAN_ASAN):fast_unwind_on_malloc=0 $(SAN_REST)
SAN_MPI_TESTS = ^DataParallel\.

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

# The scan on every ISA this CPU runs (with the plain-loop baseline), the
# AVX2 scan with its arrays at one offset modulo 4 KiB and at offsets apart
# (--stagger; its time depends on them, bench/README.md), the
# activation loops and matrix products of a small Mamba's training step
# (bench_step_ops), and training tokens/s at one thread and at all of them:
# the quickstart model, then the selective-copying Mamba
# (experiments/selective_copying_mamba.yaml). Last, where the scan's hot
# loops spill registers (tools/check-scan-spills.py; needs objdump).
bench: build
	$(BUILD)/bench/bench_selective_scan
	$(BUILD)/bench/bench_step_ops
	$(MAMBAKIT) bench scan --isa all --threads $(JOBS)
	$(MAMBAKIT) bench scan --isa avx2 --no-naive --threads $(JOBS) --stagger 0
	$(MAMBAKIT) bench scan --isa avx2 --no-naive --threads $(JOBS) --stagger 160
	$(MAMBAKIT) bench train --compare-threads 1,$(JOBS)
	$(MAMBAKIT) bench train --d-model 64 --n-layer 2 --d-state 64 --batch 32 --compare-threads 1,$(JOBS)
	python3 tools/check-scan-spills.py $(BUILD)

sanitize: deps
	cmake -S . -B $(SAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMAMBAKIT_CUDA=OFF \
	  -DMAMBAKIT_SANITIZE=ON $(CMAKE_FLAGS)
	cmake --build $(SAN_BUILD) -j $(JOBS)
	cd $(SAN_BUILD) && $(SAN_ENV) OMP_NUM_THREADS=$(JOBS) ctest --output-on-failure -j 1 -E '$(SAN_MPI_TESTS)'
	cd $(SAN_BUILD) && $(SAN_MPI_ENV) OMP_NUM_THREADS=$(JOBS) ctest --output-on-failure -j 1 -R '$(SAN_MPI_TESTS)'

# make sanitize-ci: a CI-sized part of make sanitize (build-sanitize-ci/, -O1):
# only the file readers' tests, the fuzz findings and the replay of every
# committed fuzz corpus (FuzzCorpus.*) are built and run.
SAN_CI_BUILD ?= build-sanitize-ci
SAN_CI_TESTS = test_io_fuzz_findings test_data_fuzz_findings test_eval_fuzz_findings test_exp_fuzz_findings \
	test_safetensors test_npy test_model_io test_sharded_checkpoint test_fasta test_shards test_lra_readers \
	test_multiple_choice
SAN_CI_SUITES = FuzzCorpus|FuzzFindings|CorruptSafetensors|Safetensors|SafetensorsHf|Npy|ModelConfig|ModelIo|$\
	ShardedCheckpoint|ShardedErrors|Fasta|Prepare|Shards|LraReaders|LraSplits|MultipleChoice

sanitize-ci: deps
	cmake -S . -B $(SAN_CI_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" \
	  -DMAMBAKIT_CUDA=OFF -DMAMBAKIT_SANITIZE=ON -DMAMBAKIT_BUILD_BENCH=OFF $(CMAKE_FLAGS)
	cmake --build $(SAN_CI_BUILD) -j $(JOBS) --target fuzz_replay $(SAN_CI_TESTS)
	cd $(SAN_CI_BUILD) && $(SAN_ENV) OMP_NUM_THREADS=$(JOBS) ctest --output-on-failure -j 1 \
	  -R '^($(SAN_CI_SUITES))\.'

fuzz:
	bash tools/install-deps.sh --fuzz
	cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" \
	  -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang -DMAMBAKIT_CUDA=OFF -DMAMBAKIT_FUZZ=ON \
	  -DMAMBAKIT_BUILD_TESTS=OFF -DMAMBAKIT_BUILD_BENCH=OFF $(CMAKE_FLAGS)
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzzers
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash fuzz/run.sh $(FUZZ_BUILD)

clean:
	rm -rf $(BUILD)
