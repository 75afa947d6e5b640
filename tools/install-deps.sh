#!/usr/bin/env bash
# Installs every system package mambakit's build, tests, benchmarks and demo
# need, from Debian's archive. Idempotent: does nothing when all are present.
set -euo pipefail

PACKAGES=(
  # toolchain
  g++ make cmake ninja-build pkg-config
  # numerics: BLAS for matmul, FFTW for the S4 convolution
  libopenblas-dev libfftw3-dev
  # data formats: FASTA/FASTQ (htslib + bgzip), audio (libsndfile, libsamplerate)
  libhts-dev tabix libsndfile1-dev libsamplerate0-dev
  # tokenizers: SentencePiece models (using and training them)
  libsentencepiece-dev
  # data-parallel training over processes and nodes (mpirun; the build and
  # every other test work without it, the MPI tests then skip)
  openmpi-bin libopenmpi-dev
  # CLI, configs, JSON
  libboost-program-options-dev libyaml-cpp-dev nlohmann-json3-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  # plots of training curves
  gnuplot-nox
  # real data: the King James Bible (public domain) for the language demo;
  # perl's pod2text renders perl-doc's manuals (downloaded, not installed) into
  # the English corpus of the scaling sweep (tools/make-english-corpus.sh)
  bible-kjv bible-kjv-text perl
  # DNA: E. coli 536 (bowtie), 16 genomes of 4 species (ragout), lambda phage
  # (bowtie2); piano audio: MIDI rendered by fluidsynth with FluidR3_GM,
  # program changes rewritten by midicsv, down-mixed/resampled by sox
  bowtie-examples ragout-examples bowtie2-examples
  fluidsynth fluid-soundfont-gm midicsv sox
  # LRA: PNG and gzip'd IDX readers; real-data stand-ins (Fashion-MNIST for
  # Image, man pages for Text and Retrieval)
  libpng-dev zlib1g-dev dataset-fashion-mnist manpages manpages-dev man-db bsdextrautils
)

# `make fuzz` (install-deps.sh --fuzz): clang with libFuzzer and its
# sanitizer runtimes, and clang's OpenMP runtime.
FUZZ_PACKAGES=(clang libclang-rt-dev libomp-dev)
if [ "${1:-}" = "--fuzz" ]; then
  PACKAGES+=("${FUZZ_PACKAGES[@]}")
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
