#!/usr/bin/env bash
# The device check: everything mambakit can only measure on a CUDA GPU, in
# one run of under 9 minutes on one H200 (see bench/README.md, "Device check
# (CUDA)").
#
#   OUT=/some/dir bash bench/device_check.sh
#
# Steps (each timed, guarded and logged; one failing does not stop the rest):
#   a. gpu         nvidia-smi -L and a device query
#   b. binaries    .devbundle/bin (tools/device-bundle.sh, built elsewhere),
#                  unpacked with .devbundle/lib into $WORK, those libraries
#                  first on LD_LIBRARY_PATH and CUDA's own found on this
#                  machine (/usr/local/cuda, the Python nvidia/torch wheels);
#                  without a bundle, or one that does not run here, a CMake
#                  build for the present GPU (needs the project's
#                  dependencies: tools/install-deps.sh)
#   c. tests       every test_cuda* binary, and test_model_parity_cuda when it
#                  exists, with --gtest_brief=1
#   d. fig8        the Mamba paper's Figure 8 (bench/gpu_scan.sh): fused and
#                  naive CUDA scans, PyTorch reference scan and flash
#                  attention (the preinstalled python3's torch; skipped without
#                  one), L = 512 .. 262144, forward and forward+backward
#   e. throughput  training tokens/s of the 130M shape: transformers'
#                  MambaForCausalLM (bench/hf_mamba_throughput.py, bf16
#                  autocast) against `mambakit train
#                  bench/configs/throughput_130m.yaml` in bf16 and fp32
#   g. flows       bench/device_flows.sh: train on cuda, eval and greedy
#                  generation on cuda and cpu agree, HF loads the checkpoint
#
# Files in $OUT (at most 7): device_check.log (all of the output), tests.log,
# fig8.csv, fig8.png, throughput.csv, throughput.log, and build.log when it
# had to build. The last thing printed is the summary table.
#
# Environment: OUT (default /tmp/device_check_out), TOTAL_BUDGET_S (default
# 500: steps are cut to end by then), TESTS_BUDGET_S (150: all test binaries
# together), WORK (scratch, default /tmp/mambakit-device-check), PYTHON
# (default python3), HF_BATCH (4), HF_STEPS (1), HF_WARMUP (1), HF_LIMIT_S
# (200), MK_STEPS (30), FIG8_LENGTHS, CHECKS (default "tests fig8 throughput
# flows": a subset reruns part of the check).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
OUT=${OUT:-/tmp/device_check_out}
WORK=${WORK:-/tmp/mambakit-device-check}
TOTAL_BUDGET_S=${TOTAL_BUDGET_S:-500}
PYTHON=${PYTHON:-python3}
HF_BATCH=${HF_BATCH:-4}
HF_STEPS=${HF_STEPS:-1}
HF_WARMUP=${HF_WARMUP:-1}
HF_LIMIT_S=${HF_LIMIT_S:-240}   # transformers' PyTorch path takes ~80 s a step at batch 4, L 2048
CHECKS=${CHECKS:-tests fig8 throughput flows}  # a subset reruns part of the check
MK_STEPS=${MK_STEPS:-30}
TESTS_BUDGET_S=${TESTS_BUDGET_S:-150}
FIG8_LENGTHS=${FIG8_LENGTHS:-512,1024,2048,4096,8192,16384,32768,65536,131072,262144}
NPROC=$(nproc 2> /dev/null || echo 4)
T0=$(date +%s.%N)

mkdir -p "$OUT"
rm -rf "$WORK"
mkdir -p "$WORK"
RESULTS=$WORK/results.tsv
: > "$RESULTS"

# --- helpers ------------------------------------------------------------------
now() { date +%s.%N; }
elapsed_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
# Seconds left of the whole budget.
remaining() { awk -v t0="$T0" -v b="$TOTAL_BUDGET_S" -v n="$(now)" 'BEGIN { printf "%d", b - (n - t0) }'; }
# cap S: a step's limit, S or what is left of the budget less a reserve for
# the summary; 0 when too little is left to start.
cap() {
  local r
  r=$(($(remaining) - 10))
  ((r > $1)) && r=$1
  ((r < 5)) && r=0
  echo "$r"
}
section() { printf '\n===== %s (t=%ss, %ss left) =====\n' "$1" "$(elapsed_since "$T0")" "$(remaining)"; }
# record NAME STATUS SECONDS NOTE
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$RESULTS"; echo "[$1] $2: $4"; }
have_python() { command -v "$PYTHON" > /dev/null; }
have_torch() { "$PYTHON" -c 'import torch' > /dev/null 2>&1; }

# --- a. GPU -------------------------------------------------------------------
CC="" GPU_NAME=""
step_gpu() {
  section "a. GPU"
  local t=$(now)
  if ! command -v nvidia-smi > /dev/null; then
    record gpu FAIL "$(elapsed_since "$t")" "nvidia-smi not found: no NVIDIA driver here"
    return
  fi
  timeout 30 nvidia-smi -L
  timeout 30 nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total,clocks.max.sm,clocks.max.mem,power.limit,persistence_mode --format=csv
  timeout 30 nvidia-smi | head -n 12
  GPU_NAME=$(timeout 30 nvidia-smi --query-gpu=name --format=csv,noheader 2> /dev/null | head -n 1)
  CC=$(timeout 30 nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2> /dev/null | head -n 1 | tr -d ' .')
  [[ "$CC" =~ ^[0-9]+$ ]] || CC=""
  if [[ -n "$GPU_NAME" ]]; then
    record gpu PASS "$(elapsed_since "$t")" "$GPU_NAME (sm_${CC:-?})"
  else
    record gpu FAIL "$(elapsed_since "$t")" "nvidia-smi lists no GPU"
  fi
}

# --- b. binaries -------------------------------------------------------------------
BIN="" BIN_FROM=""
# Directories that may hold CUDA's runtime libraries on this machine.
cuda_lib_dirs() {
  local d
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-*/lib64 \
           /usr/lib/x86_64-linux-gnu /usr/lib64; do
    [[ -d "$d" ]] && echo "$d"
  done
  if have_python; then
    # The CUDA wheels torch came with (nvidia/*/lib, nvidia/cu13/lib) and torch/lib,
    # found without importing torch.
    "$PYTHON" - << 'EOF' 2> /dev/null
import glob, importlib.util, os
for name in ("nvidia", "torch"):
    spec = importlib.util.find_spec(name)
    for p in (spec.submodule_search_locations or []) if spec else []:
        for d in [os.path.join(p, "lib")] + glob.glob(os.path.join(p, "*", "lib")) + \
                 glob.glob(os.path.join(p, "*", "*", "lib")):
            if os.path.isdir(d):
                print(d)
EOF
  fi
}
# Adds to LD_LIBRARY_PATH the directories that hold libraries ldd does not find.
resolve_libs() {
  local b so d found dirs
  mapfile -t dirs < <(cuda_lib_dirs)
  for b in "$BIN"/*; do
    while read -r so; do
      found=""
      for d in "${dirs[@]}"; do
        if [[ -e "$d/$so" ]]; then
          export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$d"
          echo "  $so: from $d"
          found=1
          break
        fi
      done
      [[ -n "$found" ]] || echo "  $so: NOT FOUND on this machine"
    done < <(ldd "$b" 2> /dev/null | awk '/not found/ { print $1 }')
  done
}
# unxz SRC DEST: xz, or Python's lzma where xz is missing.
unxz_to() {
  if command -v xz > /dev/null; then xz -dc "$1" > "$2"
  else "$PYTHON" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"
  fi
}
# The bundle's binaries and libraries, unpacked (*.xz) or copied into
# $WORK/bin and $WORK/devlib (lib/gcc/ into $WORK/devlib/gcc, used only when
# this machine's libstdc++ will not do).
unpack_bundle() {
  local f d sub
  mkdir -p "$WORK/bin"
  for f in "$ROOT/.devbundle/bin"/*; do
    [[ -f "$f" ]] || continue
    if [[ "$f" == *.xz ]]; then unxz_to "$f" "$WORK/bin/$(basename "$f" .xz)" || return 1
    else cp "$f" "$WORK/bin/"
    fi
  done
  chmod +x "$WORK/bin"/*
  for sub in "" gcc; do
    d=$WORK/devlib${sub:+/$sub}
    mkdir -p "$d"
    for f in "$ROOT/.devbundle/lib${sub:+/$sub}"/*; do
      [[ -f "$f" ]] || continue
      if [[ "$f" == *.xz ]]; then unxz_to "$f" "$d/$(basename "$f" .xz)" || return 1
      else cp "$f" "$d/"
      fi
    done
  done
}
# Tests open fixtures under the source directory compiled into them; where
# that path does not exist here, a link to this checkout stands in.
link_source_dir() {
  local src
  src=$(cat "$ROOT/.devbundle/SOURCE_DIR" 2> /dev/null) || return 0
  [[ -n "$src" && "$src" != "$ROOT" && ! -e "$src" ]] || return 0
  if mkdir -p "$(dirname "$src")" 2> /dev/null && ln -s "$ROOT" "$src" 2> /dev/null; then
    echo "  linked $src -> $ROOT (the tests' compiled-in source directory)"
  else
    echo "  could not link $src -> $ROOT: tests that read fixtures may fail"
  fi
}
build_here() {
  local t=$(now) limit archs gen=() bdir="$ROOT/build-device-local" fresh=1 targets=() tg all
  limit=$(cap 420)
  ((limit > 0)) || { record binaries FAIL 0 "no bundle and no time left to build"; return 1; }
  command -v cmake > /dev/null || { record binaries FAIL 0 "no .devbundle and no cmake"; return 1; }
  command -v ninja > /dev/null && gen=(-G Ninja)
  archs=${CC:+${CC}-real}
  archs=${archs:-native}
  # A cache of another checkout or configuration is dropped.
  if [[ -f "$bdir/CMakeCache.txt" ]] &&
     ! grep -q "^CMAKE_HOME_DIRECTORY:INTERNAL=$ROOT\$" "$bdir/CMakeCache.txt"; then
    rm -rf "$bdir"
  fi
  [[ -f "$bdir/CMakeCache.txt" ]] && fresh=0
  echo "building for the present GPU (MAMBAKIT_CUDA_ARCHS=$archs, $NPROC jobs, limit ${limit}s, cache: $([[ $fresh == 1 ]] && echo empty || echo kept))"
  local base=(-S "$ROOT" -B "$bdir" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DMAMBAKIT_CUDA=ON
              -DMAMBAKIT_CUDA_ARCHS="$archs" -DMAMBAKIT_ARCH=native)
  if ! timeout "$limit" cmake "${base[@]}" -DMAMBAKIT_BUILD_BENCH=ON > "$OUT/build.log" 2>&1; then
    timeout "$limit" cmake "${base[@]}" -DMAMBAKIT_BUILD_BENCH=OFF >> "$OUT/build.log" 2>&1 || {
      tail -n 8 "$OUT/build.log"
      local why
      why=$(grep -m1 -A1 'CMake Error' "$OUT/build.log" | tr -s ' \n' ' ' | cut -c1-160)
      record binaries FAIL "$(elapsed_since "$t")" "no usable .devbundle, and CMake configure failed: ${why:-see build.log}"
      return 1
    }
  fi
  all=$(cmake --build "$bdir" --target help 2> /dev/null | sed -n 's/^\.\.\. \([A-Za-z0-9_]*\).*/\1/p; s/^\([A-Za-z0-9_]*\): phony$/\1/p')
  [[ -n "$all" ]] || all=$(ninja -C "$bdir" -t targets all 2> /dev/null | sed -n 's/^\([A-Za-z0-9_]*\): phony$/\1/p')
  for tg in mambakit test_model_parity_cuda bench_gpu_scan $(grep '^test_cuda' <<< "$all" | sort -u); do
    grep -qx "$tg" <<< "$all" && targets+=("$tg")
  done
  local left
  left=$(cap 420)
  if ! timeout "$left" cmake --build "$bdir" -j "$NPROC" --target "${targets[@]}" >> "$OUT/build.log" 2>&1; then
    tail -n 15 "$OUT/build.log"
    record binaries FAIL "$(elapsed_since "$t")" "build failed or timed out (build.log)"
    return 1
  fi
  rm -rf "${WORK:?}/bin"
  mkdir -p "$WORK/bin"
  for tg in "${targets[@]}"; do
    local f
    f=$(find "$bdir" -type f -name "$tg" -perm -u+x -not -path '*/CMakeFiles/*' | head -n 1)
    [[ -n "$f" ]] && ln -sf "$f" "$WORK/bin/$tg"
  done
  BIN=$WORK/bin BIN_FROM="built here"
  record binaries PASS "$(elapsed_since "$t")" "built here for $archs in $(elapsed_since "$t")s (cache $([[ $fresh == 1 ]] && echo empty || echo kept)): ${targets[*]}"
}
step_binaries() {
  section "b. binaries"
  local t=$(now)
  local orig_path=${LD_LIBRARY_PATH:-}
  if [[ -d "$ROOT/.devbundle/bin" ]] && unpack_bundle; then
    BIN=$WORK/bin BIN_FROM=".devbundle"
    echo "bundle: $(ls "$BIN" | tr '\n' ' '); $(tr '\n' ' ' < "$ROOT/.devbundle/GLIBC" 2> /dev/null)"
    echo "this machine: $(ldd --version 2> /dev/null | head -n 1)"
    export LD_LIBRARY_PATH="$WORK/devlib${orig_path:+:$orig_path}"
    resolve_libs
    # This machine's libstdc++ first; the bundle's (Debian 12's) when that
    # one is missing or too old.
    local err=""
    if ! err=$("$BIN/mambakit" --help 2>&1 > /dev/null) &&
       grep -q 'libstdc++\|libgcc_s\|GLIBCXX\|CXXABI' <<< "$err"; then
      echo "this machine's libstdc++ does not do: ${err:0:300}"
      echo "using the bundle's libstdc++ and libgcc_s"
      export LD_LIBRARY_PATH="$WORK/devlib:$WORK/devlib/gcc${LD_LIBRARY_PATH#"$WORK/devlib"}"
    fi
    echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
    link_source_dir
    if [[ -x "$BIN/mambakit" ]] && err=$("$BIN/mambakit" --help 2>&1 > /dev/null); then
      local missing
      missing=$(for b in "$BIN"/*; do ldd "$b" 2> /dev/null | awk '/not found/ { print $1 }'; done | sort -u | tr '\n' ' ')
      if [[ -n "$missing" ]]; then
        record binaries FAIL "$(elapsed_since "$t")" ".devbundle: libraries not found: $missing"
      else
        record binaries PASS "$(elapsed_since "$t")" ".devbundle: $(ls "$BIN" | wc -l) binaries load"
      fi
      return
    fi
    echo "the bundle's mambakit does not run here: ${err:-not present}"
    echo "falling back to a build on this machine"
    BIN=""
    export LD_LIBRARY_PATH=$orig_path
  else
    echo "no .devbundle (tools/device-bundle.sh makes one on a machine with the dependencies)"
  fi
  build_here
}

# --- c. tests ---------------------------------------------------------------------
step_tests() {
  section "c. CUDA tests"
  local tests=() t b limit rc out passed failed skipped note status
  if [[ -n "$BIN" ]]; then
    for b in "$BIN"/test_cuda* "$BIN"/test_model_parity_cuda; do [[ -x "$b" ]] && tests+=("$b"); done
  fi
  if ((${#tests[@]} == 0)); then
    record tests FAIL 0 "no test binaries (binaries step: ${BIN_FROM:-none})"
    return
  fi
  : > "$OUT/tests.log"
  # All the test binaries together: at most TESTS_BUDGET_S.
  local tests_end=$(($(date +%s) + TESTS_BUDGET_S))
  for b in "${tests[@]}"; do
    t=$(now)
    local name
    name=$(basename "$b")
    limit=$(cap $((tests_end - $(date +%s))))
    if ((limit == 0)); then record "$name" SKIP 0 "no time left"; continue; fi
    echo "---- $name (limit ${limit}s)" | tee -a "$OUT/tests.log"
    out=$WORK/$name.out
    OMP_NUM_THREADS=$NPROC timeout -k 5 "$limit" "$b" --gtest_brief=1 --gtest_color=no > "$out" 2>&1
    rc=$?
    cat "$out" >> "$OUT/tests.log"
    grep -E '^\[cuda vs cpu\]|FAILED|Failure|PASSED|SKIPPED|tests? ran' "$out" | tail -n 25
    passed=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) tests\{0,1\}.*/\1/p' "$out" | tail -n 1)
    skipped=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) tests\{0,1\}.*/\1/p' "$out" | tail -n 1)
    failed=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) tests\{0,1\}.*/\1/p' "$out" | tail -n 1)
    note="${passed:-0} passed, ${failed:-0} failed, ${skipped:-0} skipped"
    if ((rc == 124 || rc == 137)); then
      status=FAIL note="timed out after ${limit}s; $note"
    elif ((rc != 0)); then
      status=FAIL note="exit $rc; $note"
      grep -q "error while loading shared libraries" "$out" && note="$(grep -m1 'error while loading' "$out")"
    elif grep -q 'no CUDA device' "$out"; then
      status=SKIP note="$note: $(grep -m1 -o 'no CUDA device.*' "$out" | cut -c1-120)"
    elif [[ "${passed:-0}" == 0 && "${skipped:-0}" != 0 ]]; then
      status=SKIP note="$note: all skipped"
    else
      status=PASS
    fi
    record "$name" "$status" "$(elapsed_since "$t")" "$note"
  done
}

# --- d. Figure 8 ---------------------------------------------------------------------
step_fig8() {
  section "d. Figure 8: selective scan vs reference scan vs flash attention"
  local t=$(now) limit extra=() rc note
  limit=$(cap 170)
  if ((limit == 0)); then record fig8 SKIP 0 "no time left"; return; fi
  if [[ -n "$BIN" && -x "$BIN/bench_gpu_scan" ]]; then
    extra+=(BENCH_BIN="$BIN/bench_gpu_scan")
  elif command -v nvcc > /dev/null; then
    extra+=(NVCC_ONLY=1)
    echo "no bench_gpu_scan binary: bench/gpu_scan.sh builds it with nvcc"
  else
    record fig8 FAIL "$(elapsed_since "$t")" "no bench_gpu_scan binary and no nvcc"
    return
  fi
  have_torch || echo "python3 cannot import torch: the PyTorch baselines are skipped (nothing is installed here)"
  # The baselines get what is left after ~45 s for the CUDA scans and the plot.
  local py_budget=$((limit - 45))
  ((py_budget < 20)) && py_budget=20
  env OUT="$WORK/fig8" CSV="$OUT/fig8.csv" PNG="$OUT/fig8.png" BUILD="$WORK/gpu_scan_build" \
    SKIP_TESTS=1 PYTHON="$PYTHON" ARCH="${CC:-90}" LENGTHS="$FIG8_LENGTHS" MAX_MS=1500 REF_MAX_S=4 \
    ATTN_MAX_S=10 PY_BUDGET_S="$py_budget" "${extra[@]}" \
    timeout -k 5 "$limit" bash bench/gpu_scan.sh
  rc=$?
  echo "---- bench/gpu_scan.sh logs"
  cat "$WORK/fig8/bench.log" "$WORK/fig8/build.log" 2> /dev/null | tail -n 80
  note=$(fig8_counts)
  if [[ ! -s "$OUT/fig8.csv" ]] || ! grep -q '^mambakit_fused' "$OUT/fig8.csv"; then
    record fig8 FAIL "$(elapsed_since "$t")" "no mambakit timings (exit $rc)${note:+; $note}"
  elif ((rc != 0)); then
    record fig8 PARTIAL "$(elapsed_since "$t")" "exit $rc; $note"
  else
    record fig8 PASS "$(elapsed_since "$t")" "$note"
  fi
}
# "impl: N lengths (max L)" per implementation, from fig8.csv.
fig8_counts() {
  [[ -s "$OUT/fig8.csv" ]] || return 0
  awk -F, 'NR > 1 && $7 == "fwd" { n[$1]++; if ($6 > m[$1]) m[$1] = $6 }
           END { for (k in n) printf "%s%s %d L (<= %d)", (s++ ? ", " : ""), k, n[k], m[k] }' "$OUT/fig8.csv"
}
# Key figures: each implementation's time at the largest length all the
# mambakit fused runs reached, and at 8192 (the reference scan's range).
fig8_figures() {
  [[ -s "$OUT/fig8.csv" ]] || return 0
  awk -F, 'NR > 1 { ms[$1 "/" $7 "/" $6] = $8; impl[$1] = 1; if ($1 == "mambakit_fused" && $6 > top) top = $6 }
    END {
      n = split("8192 " top, Ls, " ")
      for (i = 1; i <= n; ++i) for (p = 0; p < 2; ++p) {
        pass = p ? "fwdbwd" : "fwd"; line = ""
        for (k in impl) if ((k "/" pass "/" Ls[i]) in ms) line = line sprintf("  %s %.4g ms", k, ms[k "/" pass "/" Ls[i]])
        if (line != "") printf "  fig8 L=%-7s %-6s%s\n", Ls[i], pass, line
      }
    }' "$OUT/fig8.csv"
}

# --- e. training throughput ----------------------------------------------------
HF_TPS="" HF_BATCH_USED="$HF_BATCH" HF_MEM="" HF_IMPL="hf-transformers-torch-path"
step_hf() {
  section "e1. throughput: transformers MambaForCausalLM (PyTorch path)"
  local t=$(now) limit rc line
  limit=$(cap "$HF_LIMIT_S")
  if ((limit == 0)); then record throughput_hf SKIP 0 "no time left"; return; fi
  if ! have_torch; then
    record throughput_hf SKIP "$(elapsed_since "$t")" "python3 cannot import torch (nothing is installed here)"
    return
  fi
  if ! "$PYTHON" -c 'import transformers' > /dev/null 2>&1; then
    record throughput_hf SKIP "$(elapsed_since "$t")" "python3 cannot import transformers"
    return
  fi
  echo "---- hf_mamba_throughput.py (limit ${limit}s)" >> "$OUT/throughput.log"
  PYTHONUNBUFFERED=1 timeout -k 5 "$limit" "$PYTHON" bench/hf_mamba_throughput.py --batch "$HF_BATCH" \
    --seq-len 2048 --steps "$HF_STEPS" --warmup "$HF_WARMUP" --budget-s $((limit - 10)) \
    > "$WORK/hf.json" 2> >(tee -a "$OUT/throughput.log" >&2)
  rc=$?
  sleep 0.2
  line=$(grep '^{' "$WORK/hf.json" | tail -n 1)
  echo "$line" | tee -a "$OUT/throughput.log"
  HF_TPS=$(json_field "$line" tokens_per_s)
  HF_BATCH_USED=$(json_field "$line" batch)
  HF_BATCH_USED=${HF_BATCH_USED:-$HF_BATCH}
  HF_MEM=$(json_field "$line" peak_mem_gb)
  HF_IMPL=$(json_field "$line" impl)
  HF_IMPL=${HF_IMPL:-hf-transformers-torch-path}
  if [[ -z "$HF_TPS" && -n "$(json_field "$line" warmup_tokens_per_s)" ]]; then
    # Only the warm-up step ran: its rate (start-up costs included) is a
    # lower bound on transformers' steady state, so the ratio is an upper one.
    HF_TPS=$(json_field "$line" warmup_tokens_per_s)
    HF_IMPL="${HF_IMPL} (warm-up step only)"
    record throughput_hf PARTIAL "$(elapsed_since "$t")" "$HF_TPS tok/s from the warm-up step only ($(json_field "$line" warmup_step_s) s, start-up included): no timed step fitted"
  elif [[ -n "$HF_TPS" ]]; then
    record throughput_hf PASS "$(elapsed_since "$t")" "$HF_TPS tok/s (batch ${HF_BATCH_USED}, L 2048, bf16 autocast, peak ${HF_MEM} GB; $(json_field "$line" mixer_path))"
  else
    record throughput_hf FAIL "$(elapsed_since "$t")" "exit $rc$( ((rc == 124)) && echo ' (timed out)'); $(json_field "$line" error) (throughput.log)"
  fi
}
json_field() {
  [[ -n "$1" ]] || return 0
  "$PYTHON" -c 'import json, sys
try:
    v = json.loads(sys.argv[1]).get(sys.argv[2])
except Exception:
    v = None
print("" if v is None else v)' "$1" "$2" 2> /dev/null
}

# The language task's text: the bundle's KJV, the checkout's, or else a
# corpus of this repository's sources (the throughput does not depend on it).
corpus() {
  if [[ -s "$ROOT/.devbundle/data/kjv.txt.xz" ]] && unxz_to "$ROOT/.devbundle/data/kjv.txt.xz" "$WORK/kjv.txt"; then
    echo "$WORK/kjv.txt"
  elif [[ -s "$ROOT/.devbundle/data/kjv.txt" ]]; then echo "$ROOT/.devbundle/data/kjv.txt"
  elif [[ -s "$ROOT/data/kjv.txt" ]]; then echo "$ROOT/data/kjv.txt"
  else
    find "$ROOT" \( -path "$ROOT/.devbundle" -o -path "$ROOT/build*" -o -path "$ROOT/.git" \) -prune -o \
      -type f \( -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.md' -o -name '*.yaml' \) \
      -print 2> /dev/null | sort | xargs cat > "$WORK/corpus.txt" 2> /dev/null
    echo "$WORK/corpus.txt"
  fi
}

declare -A MK_TPS=() MK_MEM=() MK_STATUS=() MK_NOTE=()
step_mk() {
  local prec=$1 t=$(now) limit dir log pid rc=0 why="" mem=0 m base data
  section "e2. throughput: mambakit train ($prec)"
  limit=$(cap 70)
  if ((limit == 0)); then MK_STATUS[$prec]=SKIP; MK_NOTE[$prec]="no time left"; record "throughput_mk_$prec" SKIP 0 "no time left"; return; fi
  if [[ -z "$BIN" || ! -x "$BIN/mambakit" ]]; then
    MK_STATUS[$prec]=FAIL; MK_NOTE[$prec]="no mambakit binary"
    record "throughput_mk_$prec" FAIL 0 "no mambakit binary"; return
  fi
  data=$(corpus)
  dir=$WORK/mk_$prec
  log=$WORK/mk_$prec.log
  base=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2> /dev/null | head -n 1)
  echo "---- mambakit train bench/configs/throughput_130m.yaml ($prec, data $data, limit ${limit}s)" | tee -a "$OUT/throughput.log"
  OMP_NUM_THREADS=$NPROC "$BIN/mambakit" train bench/configs/throughput_130m.yaml \
    --set train.device=cuda --set train.precision="$prec" --set output.dir="$dir" \
    --set data.path="$data" --set train.steps="$MK_STEPS" --set train.threads="$NPROC" \
    > "$log" 2>&1 &
  pid=$!
  local deadline=$(($(date +%s) + limit))
  while kill -0 "$pid" 2> /dev/null; do
    if grep -q "no CUDA path\|training on the CPU" "$log"; then
      why="this mambakit has no CUDA training path (it would train on the CPU); stopped"
      kill -KILL "$pid" 2> /dev/null
      break
    fi
    if (($(date +%s) >= deadline)); then
      why="stopped at the ${limit}s limit"
      kill -KILL "$pid" 2> /dev/null
      break
    fi
    m=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2> /dev/null | head -n 1)
    [[ "$m" =~ ^[0-9]+$ ]] && ((m > mem)) && mem=$m
    sleep 1
  done
  wait "$pid" 2> /dev/null
  rc=$?
  cat "$log" >> "$OUT/throughput.log"
  tail -n 6 "$log"
  [[ -f "$dir/metrics.jsonl" ]] && { echo "-- metrics.jsonl"; cat "$dir/metrics.jsonl"; } >> "$OUT/throughput.log"
  [[ -f "$dir/summary.json" ]] && { echo "-- summary.json"; cat "$dir/summary.json"; } >> "$OUT/throughput.log"
  local steady
  steady=$(steady_state "$dir/metrics.jsonl")
  [[ "$base" =~ ^[0-9]+$ ]] || base=0
  ((mem > 0)) && MK_MEM[$prec]=$(awk -v m="$mem" -v b="$base" 'BEGIN { printf "%.2f", (m - b) / 1024 }')
  if [[ -n "$steady" ]]; then
    MK_TPS[$prec]=${steady%% *}
    MK_STATUS[$prec]=$([[ -z "$why" && $rc == 0 ]] && echo PASS || echo PARTIAL)
    MK_NOTE[$prec]="${steady#* }${why:+; $why}${MK_MEM[$prec]:+; GPU memory ${MK_MEM[$prec]} GB (nvidia-smi)}"
  else
    MK_STATUS[$prec]=FAIL
    local err
    err=$(grep -i -m1 'error\|no CUDA' "$log" || grep -v '^ *$' "$log" | tail -n 1)
    MK_NOTE[$prec]="${why:-exit $rc: ${err:0:200}}"
  fi
  # Free /tmp: each run leaves a 1.5 GB checkpoint.
  rm -rf "$dir"
  record "throughput_mk_$prec" "${MK_STATUS[$prec]}" "$(elapsed_since "$t")" \
    "${MK_TPS[$prec]:+${MK_TPS[$prec]} tok/s; }${MK_NOTE[$prec]}"
}
# "TOKENS_PER_S note" from a metrics.jsonl (one train line per step):
# tokens over the summed step times of the steps after the first 5 (or after
# the first third of a short run).
steady_state() {
  [[ -s "$1" ]] || return 0
  "$PYTHON" - "$1" << 'EOF' 2> /dev/null
import json, sys
rows = []
for line in open(sys.argv[1]):
    try:
        r = json.loads(line)
    except ValueError:
        continue
    if r.get("type") == "train" and r.get("tokens_per_second"):
        rows.append(r)
if len(rows) < 2:
    sys.exit(0)
skip = min(5, len(rows) // 3) or 1
tok = sec = 0.0
for prev, r in zip(rows, rows[1:]):
    if r["step"] <= skip:
        continue
    d = r["tokens"] - prev["tokens"]
    tok += d
    sec += d / r["tokens_per_second"]
if sec > 0:
    print(f"{tok / sec:.2f} steady state over steps {skip + 1}-{rows[-1]['step']}")
EOF
}

step_throughput_csv() {
  local f=$OUT/throughput.csv prec ratio
  echo "impl,precision,batch,seq_len,tokens_per_s,peak_mem_gb,ratio_vs_hf,status,note" > "$f"
  local hs hn
  hs=$(awk -F'\t' '$1 == "throughput_hf" { print $2 }' "$RESULTS")
  hn=$(awk -F'\t' '$1 == "throughput_hf" { print $4 }' "$RESULTS")
  echo "$HF_IMPL,bf16-autocast,${HF_BATCH_USED},2048,${HF_TPS},${HF_MEM},$([[ -n "$HF_TPS" ]] && echo 1.0),${hs:-SKIP},\"${hn//\"/\'}\"" >> "$f"
  for prec in bf16 fp32; do
    ratio=""
    [[ -n "$HF_TPS" && -n "${MK_TPS[$prec]:-}" ]] &&
      ratio=$(awk -v a="${MK_TPS[$prec]}" -v b="$HF_TPS" 'BEGIN { if (b > 0) printf "%.3f", a / b }')
    echo "mambakit,$prec,4,2048,${MK_TPS[$prec]:-},${MK_MEM[$prec]:-},$ratio,${MK_STATUS[$prec]:-SKIP},\"${MK_NOTE[$prec]//\"/\'}\"" >> "$f"
  done
  echo "---- $f"
  cat "$f"
}

# --- g. whole flows (bench/device_flows.sh) -------------------------------------------
step_flows() {
  section "g. whole flows: train on cuda, eval/generate on both devices, HF load"
  local t=$(now) limit rc
  limit=$(cap 180)
  if ((limit == 0)); then record flows SKIP 0 "no time left"; return; fi
  if [[ -z "$BIN" || ! -x "$BIN/mambakit" ]]; then record flows FAIL 0 "no mambakit binary"; return; fi
  OMP_NUM_THREADS=$NPROC MAMBAKIT="$BIN/mambakit" DATA="$(corpus)" PYTHON="$PYTHON" WORK="$WORK/flows" \
    timeout -k 5 "$limit" bash bench/device_flows.sh > "$WORK/flows.log" 2>&1
  rc=$?
  cat "$WORK/flows.log" | tee -a "$OUT/throughput.log"
  if ((rc == 0)); then
    record flows PASS "$(elapsed_since "$t")" "$(grep -c 'PASS' "$WORK/flows.log") checks passed (throughput.log)"
  else
    record flows FAIL "$(elapsed_since "$t")" "exit $rc: $(grep -m1 'FAIL' "$WORK/flows.log" | cut -c1-120)"
  fi
}

# --- f. summary ---------------------------------------------------------------------
summary() {
  printf '\n===== device check summary (%s s of a %s s budget) =====\n' "$(elapsed_since "$T0")" "$TOTAL_BUDGET_S"
  printf '%-24s %-8s %8s  %s\n' step status seconds note
  while IFS=$'\t' read -r name status secs note; do
    printf '%-24s %-8s %8s  %s\n' "$name" "$status" "$secs" "${note:0:150}"
  done < "$RESULTS"
  fig8_figures
  [[ -s "$OUT/throughput.csv" ]] &&
    awk -F, 'NR > 1 && $5 != "" { printf "  throughput %-28s %-13s %10s tok/s  ratio vs hf %s\n", $1, $2, $5, ($7 == "" ? "-" : $7) }' "$OUT/throughput.csv"
  echo "files: $(cd "$OUT" && ls | tr '\n' ' ')"
}

main() {
  echo "device_check: $(date -u +%FT%TZ) on $(hostname), $NPROC cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 2^20 }' /proc/meminfo), $(ldd --version 2> /dev/null | head -n 1)"
  echo "tree: $ROOT$(git -C "$ROOT" rev-parse --short HEAD 2> /dev/null | sed 's/^/ at /'); OUT=$OUT; budget ${TOTAL_BUDGET_S}s"
  command -v nvcc > /dev/null && nvcc --version | tail -n 2
  have_python && "$PYTHON" -c 'import sys; print("python", sys.version.split()[0])' 2> /dev/null
  have_python && "$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())' 2> /dev/null
  : > "$OUT/throughput.log"
  step_gpu
  step_binaries
  wants() { [[ " $CHECKS " == *" $1 "* ]]; }
  wants tests && step_tests
  wants fig8 && step_fig8
  if wants throughput; then
    step_hf
    step_mk bf16
    step_mk fp32
    step_throughput_csv
  fi
  wants flows && step_flows
  summary
  ! grep -q $'\tFAIL\t' "$RESULTS"
}

main 2>&1 | tee "$OUT/device_check.log"
exit "${PIPESTATUS[0]}"
