#!/usr/bin/env bash
# Runs every libFuzzer harness of a fuzz build (make fuzz calls it) for a
# bounded time, one after the other, and prints a table of executions and
# seconds per harness.
#
#   fuzz/run.sh BUILD_DIR [HARNESS...]      (default: every fuzz_* in BUILD_DIR/fuzz)
#
# Environment:
#   FUZZ_SECONDS  time limit per harness (default 120)
#   FUZZ_RUNS     stop a harness after this many executions (default: no limit,
#                 only the time bound; the acceptance runs use 1000000)
#   FUZZ_RSS_MB   memory limit per harness (default 2048), FUZZ_TIMEOUT seconds
#                 per input before it counts as a hang (default 10),
#                 FUZZ_MAX_LEN largest input tried (default 8192 bytes)
#
# Seeds come from fuzz/corpus/<name> (committed, read only); what the fuzzer
# adds goes to BUILD_DIR/fuzz-work/corpus/<name>, crash/leak/timeout inputs to
# BUILD_DIR/fuzz-work/artifacts/<name>/, logs and the summary table to
# BUILD_DIR/fuzz-work/. The exit status is non-zero when any harness found
# something: fix the parser, add the input to fuzz/corpus/<name> as
# crash-<what> and a test to the module's tests/test_*_fuzz_findings.cpp.
set -uo pipefail

build=${1:?usage: fuzz/run.sh BUILD_DIR [HARNESS...]}
shift
src=$(cd "$(dirname "$0")" && pwd)
work="$build/fuzz-work"
mkdir -p "$work"
seconds=${FUZZ_SECONDS:-120}
runs=${FUZZ_RUNS:--1}
rss=${FUZZ_RSS_MB:-2048}
timeout=${FUZZ_TIMEOUT:-10}
max_len=${FUZZ_MAX_LEN:-8192}

if [ $# -gt 0 ]; then
  harnesses=("$@")
else
  harnesses=()
  for f in "$build"/fuzz/fuzz_*; do
    [ -x "$f" ] && harnesses+=("$(basename "$f")")
  done
fi
[ ${#harnesses[@]} -gt 0 ] || { echo "fuzz/run.sh: no harnesses in $build/fuzz (build with make fuzz)" >&2; exit 2; }

# Leaks libFuzzer should not count: see tools/lsan.supp.
# A small quarantine: freed memory is reused sooner, which halves the page
# faults of each execution (use-after-free is still caught within 16 MB).
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:quarantine_size_mb=16}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$src/../tools/lsan.supp:print_suppressions=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:suppressions=$src/../tools/ubsan.supp}"
export OMP_NUM_THREADS=1

summary="$work/summary.txt"
printf "%-26s %12s %8s %10s  %s\n" harness executions seconds exec/s result > "$summary"
status=0
for h in "${harnesses[@]}"; do
  name=${h#fuzz_}
  seeds="$src/corpus/$name"
  corpus="$work/corpus/$name"
  artifacts="$work/artifacts/$name"
  mkdir -p "$corpus" "$artifacts"
  dict=()
  case $name in
    yaml_config) dict=(-dict="$src/dicts/yaml.dict") ;;
    safetensors|model_config|manifest|tokenizer_bpe|trainer_state|mc_jsonl|generation_config|weights_index)
      dict=(-dict="$src/dicts/json.dict") ;;
  esac
  log="$work/$name.log"
  echo "fuzz: $h (up to ${seconds}s$( [ "$runs" -gt 0 ] && echo ", $runs runs")) ..."
  start=$(date +%s.%N)
  "$build/fuzz/$h" -max_total_time="$seconds" -runs="$runs" -rss_limit_mb="$rss" -timeout="$timeout" \
    -max_len="$max_len" -print_final_stats=1 -artifact_prefix="$artifacts/" "${dict[@]}" \
    "$corpus" "$seeds" > "$log" 2>&1
  rc=$?
  end=$(date +%s.%N)
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.0f", b - a }')
  rate=$(awk -v n="${execs:-0}" -v s="$secs" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')
  if [ $rc -eq 0 ]; then
    result=ok
  else
    result="FOUND (exit $rc): $(grep -m1 -E 'ERROR: |SUMMARY: |fuzz: ' "$log" | cut -c1-100); see $log"
    status=1
  fi
  printf "%-26s %12s %8s %10s  %s\n" "$h" "${execs:-?}" "$secs" "$rate" "$result" | tee -a "$summary"
done
echo
cat "$summary"
exit $status
