#!/usr/bin/env bash
# Whole flows on a GPU, end to end through the CLI (part of
# bench/device_check.sh; runs alone too):
#   1. train the quickstart model (shortened) with train.device=cuda, and a
#      hybrid [mamba, attention] one;
#   2. eval the CUDA-written checkpoint on the GPU and on the CPU: the same
#      validation loss (to float rounding);
#   3. greedy generation on both devices (recurrent step kernels, KV cache):
#      the same text;
#   4. the CUDA-written checkpoint in HF transformers: MambaForCausalLM's
#      logits against `mambakit logits` (needs python3 with torch and
#      transformers; skipped otherwise).
# Prints one PASS/FAIL line per check and exits non-zero if any failed.
#
#   MAMBAKIT=path/to/mambakit DATA=path/to/kjv.txt bash bench/device_flows.sh
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
M=${MAMBAKIT:-build/experiments/mambakit}
DATA=${DATA:-data/kjv.txt}
W=${WORK:-/tmp/mambakit-device-flows}
PYTHON=${PYTHON:-python3}
DEV=${DEVICE:-cuda}     # DEVICE=cpu checks the script itself on a machine without a GPU
STEPS=${STEPS:-200}
rm -rf "$W"
mkdir -p "$W"
fails=0
pass() { echo "[flows] PASS: $*"; }
fail() {
  echo "[flows] FAIL: $*"
  fails=$((fails + 1))
}

train_run() {  # name, extra --set arguments...
  local name=$1
  shift
  "$M" train experiments/quickstart.yaml --set train.device="$DEV" --set train.steps="$STEPS" \
    --set data.path="$DATA" --set output.dir="$W/$name" --set output.overwrite=true \
    --set eval.every=100 --set eval.max_sequences=64 --set output.plot=false "$@" > "$W/$name.log" 2>&1
}

for spec in "mamba:" "hybrid:--set model.mixer=[mamba,attention] --set model.n_heads=2"; do
  name=${spec%%:*}
  # shellcheck disable=SC2086
  if ! train_run "$name" ${spec#*:}; then
    fail "train $name on $DEV: $(tail -n 1 "$W/$name.log")"
    continue
  fi
  pass "train $name on $DEV: $(grep -m1 -o 'validation bits per byte: .*' "$W/$name.log")"
  gpu=$("$M" eval "$W/$name" --device "$DEV" --max-sequences 64 --no-summary 2> /dev/null)
  cpu=$("$M" eval "$W/$name" --device cpu --max-sequences 64 --no-summary 2> /dev/null)
  "$PYTHON" - "$gpu" "$cpu" "$name" << 'EOF' && pass "eval $name: $DEV and cpu agree" || fail "eval $name: cuda $gpu, cpu $cpu"
import json, sys
g, c = json.loads(sys.argv[1]), json.loads(sys.argv[2])
k = [x for x in g if x.endswith("_loss")][0]
rel = abs(g[k] - c[k]) / abs(c[k])
print(f"[flows] eval {sys.argv[3]}: {k} cuda {g[k]:.6f} cpu {c[k]:.6f} (rel {rel:.1e})")
sys.exit(0 if rel < 1e-4 else 1)
EOF
  tg=$("$M" generate "$W/$name" --device "$DEV" --prompt "And God said" --tokens 200 --temperature 0 2> /dev/null)
  tc=$("$M" generate "$W/$name" --device cpu --prompt "And God said" --tokens 200 --temperature 0 2> /dev/null)
  if [[ -n "$tg" && "$tg" == "$tc" ]]; then
    pass "greedy generation $name: 200 bytes identical on $DEV and cpu: $(echo "$tg" | head -c 80 | tr '\n' ' ')"
  else
    fail "greedy generation $name differs: cuda '$(echo "$tg" | head -c 60)' cpu '$(echo "$tc" | head -c 60)'"
  fi
done

# HF transformers loads the CUDA-trained Mamba checkpoint.
if "$PYTHON" -c 'import torch, transformers' 2> /dev/null && [[ -f "$W/mamba/model.safetensors" ]]; then
  "$M" logits "$W/mamba" --text "And God said, Let there be light" --out "$W/logits.npy" > /dev/null 2>&1
  "$PYTHON" - "$W/mamba" "$W/logits.npy" << 'EOF' && pass "HF MambaForCausalLM loads the CUDA-trained checkpoint" || fail "HF comparison"
import sys, numpy as np, torch
from transformers import MambaForCausalLM
m = MambaForCausalLM.from_pretrained(sys.argv[1]).eval()
ids = torch.tensor([list(b"And God said, Let there be light")])
with torch.no_grad():
    ref = m(ids).logits[0].double().numpy()
got = np.load(sys.argv[2]).reshape(ref.shape).astype(np.float64)
err = np.abs(got - ref).max()
print(f"[flows] HF logits vs mambakit logits: max abs difference {err:.2e} (max |logit| {np.abs(ref).max():.1f})")
sys.exit(0 if err < 1e-3 else 1)
EOF
else
  echo "[flows] SKIP: HF check (python3 with torch and transformers not found, or no checkpoint)"
fi

echo "[flows] $fails failed"
exit $((fails > 0))
