#!/usr/bin/env bash
# Data-parallel scaling on one machine: `mambakit bench train` under mpirun
# with 1 and 2 ranks of one thread each (the quickstart model, global batch
# 16 by default), two interleaved rounds, best of each. Prints tokens/s of
# each, the scaling efficiency (tokens/s with 2 ranks / (2 x with 1)), the
# share of step time spent waiting for the gradient all-reduce, and the cost
# of one all-reduce of the gradient buffer; then projects 8 ranks on 8 nodes
# from those measurements (see the end of this file for the model).
# Also one rank on half the batch: the work each of 2 ranks does, so
# 1 rank(B) / (half(B/2) + waiting) is the efficiency 2 free cores would
# give, which a machine busy with other jobs cannot show directly.
#
#   bench/mpi_scaling.sh [build/experiments/mambakit] [extra bench-train flags]
#   BATCH=16 NET_GBPS=10 NET_LATENCY_US=20 ROUNDS=2 bench/mpi_scaling.sh
set -euo pipefail

MAMBAKIT=${1:-build/experiments/mambakit}
shift || true
MPIRUN=${MPIRUN:-mpirun}
ROUNDS=${ROUNDS:-2}
BATCH=${BATCH:-16}                 # the global batch (the quickstart's)
NET_GBPS=${NET_GBPS:-10}           # assumed network of the projection (10 GbE)
NET_LATENCY_US=${NET_LATENCY_US:-20}
export OMP_NUM_THREADS=1
# Open MPI refuses root without these; harmless otherwise.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

command -v "$MPIRUN" >/dev/null || { echo "mpi_scaling: no $MPIRUN (apt-get install openmpi-bin)" >&2; exit 1; }
"$MAMBAKIT" --version | grep -q "mpi (" || { echo "mpi_scaling: $MAMBAKIT was built without MPI" >&2; exit 1; }

field() { grep -o "\"$1\":[-0-9.e+]*" | head -1 | cut -d: -f2; }

run() {  # RANKS [bench-train flags] -> one JSON line
  local np=$1
  shift
  "$MPIRUN" -np "$np" --oversubscribe --bind-to none "$MAMBAKIT" bench train --threads 1 --json "$@" 2>/dev/null |
    grep '^{' || { echo "mpi_scaling: bench train with $np ranks failed" >&2; exit 1; }
}

faster() { awk "BEGIN{exit !($(echo "$1" | field tokens_per_s) > $(echo "$2" | field tokens_per_s))}"; }
best1="" best2="" besth=""
for ((r = 0; r < ROUNDS; ++r)); do
  j1=$(run 1 --batch "$BATCH" "${@}")
  j2=$(run 2 --batch "$BATCH" "${@}")
  jh=$(run 1 --batch $((BATCH / 2)) "${@}")
  if [ -z "$best1" ] || faster "$j1" "$best1"; then best1=$j1; fi
  if [ -z "$best2" ] || faster "$j2" "$best2"; then best2=$j2; fi
  if [ -z "$besth" ] || faster "$jh" "$besth"; then besth=$jh; fi
done

t1=$(echo "$best1" | field tokens_per_s)
t2=$(echo "$best2" | field tokens_per_s)
ms1=$(echo "$best1" | field ms_per_step)
ms2=$(echo "$best2" | field ms_per_step)
msh=$(echo "$besth" | field ms_per_step)
share=$(echo "$best2" | field comm_fraction)
ar=$(echo "$best2" | field allreduce_ms)
bytes=$(echo "$best2" | field grad_bytes)
echo "load: $(uptime | sed 's/.*load average/load average/')"
awk -v t1="$t1" -v t2="$t2" -v ms1="$ms1" -v ms2="$ms2" -v msh="$msh" -v share="$share" -v ar="$ar" -v bytes="$bytes" \
    -v gbps="$NET_GBPS" -v lat="$NET_LATENCY_US" 'BEGIN {
  printf "1 rank : %8.0f tokens/s  %7.1f ms/step\n", t1, ms1
  printf "2 ranks: %8.0f tokens/s  %7.1f ms/step  (global batch the same)\n", t2, ms2
  printf "scaling efficiency (2 ranks): %.1f%%\n", 100 * t2 / (2 * t1)
  printf "communication: %.1f%% of step time waiting for gradient sums; one all-reduce of %.2f MB: %.2f ms\n",
         100 * share, bytes / 1e6, ar
  printf "1 rank on half the batch: %.1f ms/step (work split %.1f%%); on 2 free cores 2 ranks would reach %.1f%%\n",
         msh, 100 * ms1 / (2 * msh), 100 * ms1 / (2 * (msh + share * ms2))
  # Ring all-reduce over p ranks: 2(p-1)/p of the buffer crosses each link,
  # in 2(p-1) latency-bound stages. The 2-rank measurement is 1 buffer over
  # the shared-memory link; the projection scales it, and also prices the
  # buffer on a network of NET_GBPS with NET_LATENCY_US per stage.
  p = 8
  compute8 = ms1 / p                                  # the global batch split 8 ways, ideally
  ar8_link = ar * (2 * (p - 1) / p)                   # this machine link, 8 ranks
  ar8_net  = 1e3 * (2 * (p - 1) / p) * bytes / (gbps * 1e9 / 8) + 2 * (p - 1) * lat / 1e3
  printf "projection to 8 nodes (global batch unchanged, compute %.1f ms/step per rank):\n", compute8
  printf "  all-reduce %.2f ms at this machine link speed: efficiency %.0f%% without overlap\n",
         ar8_link, 100 * compute8 / (compute8 + ar8_link)
  printf "  all-reduce %.2f ms on %g Gb/s, %g us per stage: efficiency %.0f%% without overlap\n",
         ar8_net, gbps, lat, 100 * compute8 / (compute8 + ar8_net)
}'
