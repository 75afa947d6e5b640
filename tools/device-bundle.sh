#!/usr/bin/env bash
# Builds, on a machine that has the project's dependencies, the CUDA binaries
# that bench/device_check.sh runs on a GPU machine that lacks them (no
# OpenBLAS, FFTW, Boost, yaml-cpp, GoogleTest, htslib, ... there), and packs
# them with every non-system shared library they load:
#
#   build-device/            the CMake build (Release, sm_90, -march=x86-64-v3,
#                            so the binaries run on any AVX2 host)
#   .devbundle/bin/          mambakit, test_cuda*, test_model_parity_cuda (when
#                            that target exists), bench_gpu_scan; those over
#                            2 MiB xz-compressed when the bundle would pass
#                            MAX_MIB (45)
#   .devbundle/lib/          their shared libraries, stripped; not CUDA's own
#                            (libcudart, libcublas, libcublasLt, libcufft,
#                            libnccl) nor glibc's, which the GPU machine has.
#                            Those over 2 MiB are xz-compressed (NAME.xz:
#                            OpenBLAS alone is 36 MiB, 4 MiB compressed);
#                            bench/device_check.sh unpacks them.
#   .devbundle/lib/gcc/      libstdc++ and libgcc_s: used there only when the
#                            machine's own are too old (Debian 12's libstdc++
#                            asks for glibc 2.36, newer than Ubuntu 22.04's)
#   .devbundle/data/kjv.txt.xz  the language task's corpus (tools/fetch-data.sh)
#   .devbundle/SOURCE_DIR    this checkout's path, compiled into the tests
#   .devbundle/GLIBC         the newest glibc symbol versions the binaries
#                            and libraries need (the GPU machine's glibc must
#                            be at least that)
#
# Both folders are ignored by git; carry .devbundle to the GPU machine.
#
#   tools/device-bundle.sh            (JOBS=N for the build's parallelism)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${BUILD:-build-device}
BUNDLE=${BUNDLE:-.devbundle}
JOBS=${JOBS:-$(nproc)}
ARCHS=${ARCHS:-90}

log() { echo "[device-bundle] $*" >&2; }

# --- Build ------------------------------------------------------------------
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMAMBAKIT_CUDA=ON \
  -DMAMBAKIT_CUDA_ARCHS="$ARCHS" -DMAMBAKIT_ARCH=x86-64-v3 -DMAMBAKIT_BUILD_TESTS=ON \
  -DMAMBAKIT_BUILD_BENCH=ON > "$BUILD.configure.log" 2>&1 ||
  { tail -n 30 "$BUILD.configure.log" >&2; log "configure failed (full log: $BUILD.configure.log)"; exit 1; }
rm -f "$BUILD.configure.log"

# The top-level phony targets (executables are listed by name there).
mapfile -t all_targets < <(ninja -C "$BUILD" -t targets all | sed -n 's/^\([A-Za-z0-9_]*\): phony$/\1/p' | sort -u)
have_target() { printf '%s\n' "${all_targets[@]}" | grep -qx "$1"; }
targets=()
for t in mambakit test_model_parity_cuda bench_gpu_scan; do
  if have_target "$t"; then targets+=("$t"); else log "no target $t in this tree: skipped"; fi
done
for t in "${all_targets[@]}"; do
  [[ "$t" == test_cuda* && "$t" != test_model_parity_cuda ]] && targets+=("$t")
done
log "building ${targets[*]} (-j $JOBS)"
cmake --build "$BUILD" -j "$JOBS" --target "${targets[@]}"

# --- Binaries -------------------------------------------------------------------
rm -rf "$BUNDLE"
mkdir -p "$BUNDLE/bin" "$BUNDLE/lib/gcc" "$BUNDLE/data"
for t in "${targets[@]}"; do
  f=$(find "$BUILD" -type f -name "$t" -perm -u+x -not -path '*/CMakeFiles/*' | head -n 1)
  [[ -n "$f" ]] || { log "built $t but cannot find the file"; exit 1; }
  cp "$f" "$BUNDLE/bin/$t"
  strip --strip-debug "$BUNDLE/bin/$t"
done

# --- Shared libraries -------------------------------------------------------------
# Everything ldd resolves, less glibc's own libraries (the GPU machine's
# glibc must be at least as new as the versions these binaries ask for: the
# script prints the newest), the kernel's vDSO and CUDA's own libraries (the
# GPU machine has them, matched to its driver).
skip_re='^(linux-vdso|ld-linux|libc\.so|libm\.so|libdl\.so|libpthread\.so|librt\.so|libutil\.so|libresolv\.so|libcudart\.so|libcublas\.so|libcublasLt\.so|libcufft\.so|libcufftw\.so|libnccl\.so|libcuda\.so)'
declare -A copied=()
for b in "$BUNDLE"/bin/*; do
  while read -r name _ path _; do
    [[ -n "$name" ]] || continue
    if [[ "$name" =~ $skip_re ]]; then continue; fi
    if [[ "$path" == "not" || -z "$path" ]]; then log "$b: $name not found by ldd"; exit 1; fi
    [[ -n "${copied[$name]:-}" ]] && continue
    dest=$BUNDLE/lib
    [[ "$name" =~ ^(libstdc\+\+\.so|libgcc_s\.so) ]] && dest=$BUNDLE/lib/gcc
    cp -L "$path" "$dest/$name"
    chmod u+w "$dest/$name"
    strip --strip-unneeded "$dest/$name"
    copied[$name]=$path
  done < <(ldd "$b" | awk '/=>/ { print $1, $2, $3, $4 }')
done
log "libraries: $(printf '%s\n' "${!copied[@]}" | sort | tr '\n' ' ')"

# The libraries must load from the bundle alone (CUDA's from the CUDA lib
# directory): check with the bundle first on the path.
bundle_path="$ROOT/$BUNDLE/lib:$ROOT/$BUNDLE/lib/gcc"
for b in "$BUNDLE"/bin/*; do
  if LD_LIBRARY_PATH="$bundle_path" ldd "$b" | grep -q "not found"; then
    LD_LIBRARY_PATH="$bundle_path" ldd "$b" | grep "not found" >&2
    log "$b: libraries missing from the bundle"
    exit 1
  fi
done

# The newest glibc versions asked for, with and without the bundle's libstdc++.
glibc_max() { for f in "$@"; do objdump -T "$f" 2> /dev/null; done | grep -o 'GLIBC_[0-9][0-9.]*' | sort -uV | tail -n 1; }
mapfile -t own < <(find "$BUNDLE/bin" "$BUNDLE/lib" -maxdepth 1 -type f)
{
  echo "binaries and lib/: $(glibc_max "${own[@]}")"
  echo "lib/gcc/: $(glibc_max "$BUNDLE"/lib/gcc/*)"
} > "$BUNDLE/GLIBC"
sed 's/^/[device-bundle] glibc needed by /' "$BUNDLE/GLIBC" >&2

# Large libraries compressed (bench/device_check.sh unpacks them).
command -v xz > /dev/null || { log "xz missing (apt-get install xz-utils)"; exit 1; }
for f in "$BUNDLE"/lib/*.so* "$BUNDLE"/lib/gcc/*.so*; do
  if (($(stat -c %s "$f") > 2 * 1024 * 1024)); then
    xz -9 -T "$JOBS" "$f"
  fi
done

# --- Data ----------------------------------------------------------------------
# The language task reads a text file: the King James Bible, as
# tools/fetch-data.sh makes it (only that part of it is needed here).
if [[ -s data/kjv.txt ]]; then
  xz -9 -T "$JOBS" -c data/kjv.txt > "$BUNDLE/data/kjv.txt.xz"
elif command -v bible > /dev/null; then
  bible 'gen1:1-rev22:21' | xz -9 -T "$JOBS" > "$BUNDLE/data/kjv.txt.xz"
else
  log "no data/kjv.txt and no 'bible' (tools/install-deps.sh, tools/fetch-data.sh): bundle without data;"
  log "bench/device_check.sh then trains on a corpus of this repository's sources"
fi

# Tests open fixtures under the source directory compiled into them.
echo "$ROOT" > "$BUNDLE/SOURCE_DIR"

# Over MAX_MIB (default 45), the binaries over 2 MiB are compressed too
# (NAME.xz; bench/device_check.sh unpacks them).
MAX_MIB=${MAX_MIB:-45}
if (($(du -sb "$BUNDLE" | cut -f1) > MAX_MIB * 1024 * 1024)); then
  log "over $MAX_MIB MiB: compressing the large binaries as well"
  for f in "$BUNDLE"/bin/*; do
    if (($(stat -c %s "$f") > 2 * 1024 * 1024)); then xz -9 -T "$JOBS" "$f"; fi
  done
fi

du -sh "$BUNDLE"/bin "$BUNDLE"/lib "$BUNDLE"/data >&2
ls -l "$BUNDLE"/lib "$BUNDLE"/lib/gcc >&2
size=$(du -sb "$BUNDLE" | cut -f1)
echo "device-bundle: $BUNDLE is $((size / 1024 / 1024)) MiB ($size bytes): $(ls "$BUNDLE/bin" | tr '\n' ' ')"
if ((size > 45 * 1024 * 1024)); then
  log "WARNING: over 45 MiB; the working tree and the carried folders must stay under 64 MiB together"
fi
