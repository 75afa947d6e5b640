#!/usr/bin/env python3
"""Training throughput of Hugging Face transformers' MambaForCausalLM: the
baseline that bench/device_check.sh sets beside `mambakit train` on
bench/configs/throughput_130m.yaml.

The model is the 130M shape (d_model 768, 24 layers, vocabulary 50280, state
16, expand 2, conv 4), randomly initialised, fp32 weights, on the GPU. One
training step is what mambakit's trainer does per step: forward under bf16
autocast, cross-entropy loss, backward, gradient clipping to norm 1 and an
AdamW update. After --warmup steps, --steps steps are timed (with
torch.cuda.synchronize around them); tokens/s = batch * seq_len * timed
steps / their seconds. With --budget-s, the whole script (imports and
warm-up included) stops before a step that would end past the budget: the
second warm-up step is dropped, then timed steps (at least one runs).

Without mamba_ssm and causal_conv1d (not installed on the device machine,
which has no network) transformers runs its sequential PyTorch scan (a
Python loop over time). Unless --allow-kernels, hub kernels are switched off
(USE_HUB_KERNELS=NO, HF_HUB_OFFLINE=1) and, in the transformers versions
that look kernels up when a MambaMixer is built (lazy_load_kernel), that
lookup answers None. An installed mamba_ssm is still used by the versions
that import it directly; the printed path and the JSON line's "impl" and
"mixer_path" say so.

On an out-of-memory error the batch is halved and the measurement starts
over (the JSON line reports the batch used).

Last line of stdout, one JSON object:
  {"impl": "hf-transformers-torch-path", "tokens_per_s": ..., "batch": ...,
   "seq_len": ..., "peak_mem_gb": ..., ...}

  python3 bench/hf_mamba_throughput.py --batch 4 --steps 5
  python3 bench/hf_mamba_throughput.py --device cpu --layers 2 --d-model 64 \\
      --vocab 256 --seq-len 64 --batch 2 --steps 2     (a smoke test)
"""
import argparse
import json
import math
import os
import sys
import time


def log(msg):
    print(f"[hf_mamba_throughput] {msg}", file=sys.stderr, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=5, help="timed steps")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--budget-s", type=float, default=0.0,
                    help="wall-clock budget of the whole script; no step is started that would "
                         "end past it, except the first timed one (0: run all steps)")
    ap.add_argument("--d-model", type=int, default=768)
    ap.add_argument("--layers", type=int, default=24)
    ap.add_argument("--vocab", type=int, default=50280)
    ap.add_argument("--precision", choices=["bf16", "fp32"], default="bf16",
                    help="bf16: torch.autocast(bfloat16) over fp32 weights")
    ap.add_argument("--lr", type=float, default=6e-4)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--allow-kernels", action="store_true",
                    help="let transformers use mamba_ssm / hub kernels if it finds them")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    t_script = time.perf_counter()

    def fits(step_s):
        """Whether one more step of step_s seconds ends within --budget-s."""
        return args.budget_s <= 0 or time.perf_counter() - t_script + step_s <= args.budget_s

    # Never reach for the network (the device machine has none).
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if not args.allow_kernels:
        os.environ["USE_HUB_KERNELS"] = "NO"

    import importlib.util

    import torch
    import transformers
    from transformers import MambaConfig, MambaForCausalLM
    from transformers.models.mamba import modeling_mamba as mm

    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        log("no CUDA device visible to PyTorch")
        print(json.dumps({"impl": "hf-transformers-torch-path", "error": "no CUDA device"}))
        return 1

    # Early transformers 5 releases look the fast kernels up when a MambaMixer
    # is built (lazy_load_kernel) and pick the path in forward from module
    # globals; later ones decorate torch functions that an importable
    # mamba_ssm (or a hub kernel) replaces at import.
    lookup_style = hasattr(mm, "lazy_load_kernel")
    if not args.allow_kernels and lookup_style:
        mm.lazy_load_kernel = lambda *a, **k: None

    torch.manual_seed(args.seed)
    cfg = MambaConfig(hidden_size=args.d_model, num_hidden_layers=args.layers,
                      vocab_size=args.vocab, state_size=16, expand=2, conv_kernel=4)
    model = MambaForCausalLM(cfg).to(dev)
    model.train()
    nparams = sum(p.numel() for p in model.parameters())

    if lookup_style:
        fast = all(getattr(mm, n, None) is not None for n in
                   ("selective_state_update", "selective_scan_fn", "causal_conv1d_fn",
                    "causal_conv1d_update", "mamba_inner_fn"))
    else:
        fast = importlib.util.find_spec("mamba_ssm") is not None or (
            args.allow_kernels and importlib.util.find_spec("kernels") is not None)
    if fast and dev.type == "cuda":
        path = "CUDA kernels (mamba_ssm / hub kernels)"
        impl = "hf-transformers-kernels"
    elif getattr(cfg, "use_mambapy", False):
        path = "PyTorch with mamba.py pscan"
        impl = "hf-transformers-mambapy"
    else:
        path = "PyTorch sequential scan (Python loop over time)"
        impl = "hf-transformers-torch-path"
    gpu = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    log(f"transformers {transformers.__version__}, torch {torch.__version__}, {gpu}; "
        f"{nparams / 1e6:.1f}M parameters; mixer path: {path}")

    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), eps=1e-8,
                            weight_decay=0.1, fused=dev.type == "cuda")
    gen = torch.Generator(device="cpu").manual_seed(args.seed)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def step(batch):
        ids = torch.randint(0, args.vocab, (batch, args.seq_len), generator=gen).to(dev)
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16,
                            enabled=args.precision == "bf16"):
            out = model(input_ids=ids, labels=ids)
        loss = out.loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    batch = args.batch
    while True:
        try:
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
            step_s = 0.0
            for i in range(args.warmup):
                if i > 0 and not fits(2 * step_s):
                    log(f"budget: warm-up cut to {i} step(s)")
                    break
                t0 = time.perf_counter()
                loss = step(batch)
                sync()
                step_s = time.perf_counter() - t0
                log(f"warm-up step {i + 1}/{args.warmup}: {step_s:.1f} s, loss {loss.item():.4f}")
                # A record even if no timed step fits the budget: the
                # warm-up step includes one-time start-up costs, so its rate
                # is a lower bound on the steady state.
                print(json.dumps({"impl": impl, "warmup_tokens_per_s": round(batch * args.seq_len / step_s, 2),
                                  "warmup_step_s": round(step_s, 3), "batch": batch,
                                  "seq_len": args.seq_len, "mixer_path": path}), flush=True)
            sync()
            t0 = time.perf_counter()
            done = 0
            for i in range(args.steps):
                if done > 0 and not fits(step_s):
                    log(f"budget of {args.budget_s:.0f} s: {done} timed steps")
                    break
                ts = time.perf_counter()
                loss = step(batch)
                sync()
                done += 1
                step_s = time.perf_counter() - ts
                log(f"timed step {done}: {step_s:.2f} s, loss {loss.item():.4f}")
            seconds = time.perf_counter() - t0
            break
        except torch.cuda.OutOfMemoryError:
            opt.zero_grad(set_to_none=True)
            if dev.type == "cuda":
                torch.cuda.empty_cache()
            if batch == 1:
                log("out of memory at batch 1")
                print(json.dumps({"impl": impl, "error": "out of memory",
                                  "batch": 1, "seq_len": args.seq_len}))
                return 1
            batch //= 2
            log(f"out of memory; retrying with batch {batch}")

    tokens = batch * args.seq_len * done
    peak = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else float("nan")
    rec = {
        "impl": impl,
        "tokens_per_s": round(tokens / seconds, 2),
        "batch": batch,
        "seq_len": args.seq_len,
        "peak_mem_gb": None if math.isnan(peak) else round(peak, 3),
        "precision": args.precision,
        "timed_steps": done,
        "seconds": round(seconds, 3),
        "step_s": round(seconds / done, 4),
        "parameters": nparams,
        "mixer_path": path,
        "device": gpu,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    print(json.dumps(rec), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
