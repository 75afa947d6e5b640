#!/usr/bin/env python3
"""Side-by-side CPU benchmark: mambakit against HF transformers' MambaForCausalLM.

The same model (d_model 256, 4 Mamba layers, byte vocabulary of 256, state 16,
expand 2, conv 4, tied LM head; 1,817,856 parameters on both sides) is

  * trained on random bytes, batch 8 x 256 tokens, AdamW and gradient
    clipping, fp32 on the CPU:
      - mambakit: `mambakit bench train` (a process per measurement);
      - HF, default path (`use_mambapy=False`: a Python loop over the 256
        positions), and HF with `use_mambapy=True` (mambapy's parallel scan);
  * used to generate 512 tokens greedily, recurrently (HF: `generate` with
    its cache), from one and the same set of weights: the HF model is saved
    with `save_pretrained` and `mambakit generate` loads that directory.

Runs are interleaved (mambakit, HF default, HF mambapy, then generation, and
again for each repeat) at each thread setting, and the medians and the ratios
mambakit / HF are printed. Neither the build nor CI runs this script; see
tools/reference/README.md for the venv it needs and how to read its output.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The model both sides run (HF MambaConfig names).
D_MODEL = 256
N_LAYER = 4
VOCAB = 256
D_STATE = 16
EXPAND = 2
D_CONV = 4
BATCH = 8
SEQ_LEN = 256

# AdamW as mambakit's trainer and `bench train` use it (ops::AdamWHyper).
LR = 1e-3
BETAS = (0.9, 0.95)
WEIGHT_DECAY = 0.1
CLIP = 1.0

# Generation starts from this one-byte prompt on both sides. (Not byte 0:
# HF's generate would take it for padding and mask it out.)
PROMPT = "A"

REPO_ROOT = Path(__file__).resolve().parents[2]


# --- setup -------------------------------------------------------------------


def parse_args(argv=None):
    """The command line."""
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Setup and how to read the output: tools/reference/README.md",
    )
    p.add_argument("--mambakit", default=str(REPO_ROOT / "build/experiments/mambakit"),
                   help="the mambakit binary (default: %(default)s)")
    p.add_argument("--threads", default="1,all",
                   help="comma-separated thread counts; 'all' is every CPU this process may use "
                        "(default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3,
                   help="interleaved rounds per thread setting; medians are reported (default: %(default)s)")
    p.add_argument("--hf-warmup", type=int, default=1,
                   help="untimed training steps of the HF default path, once per thread setting "
                        "(default: %(default)s)")
    p.add_argument("--hf-steps", type=int, default=2,
                   help="timed training steps of the HF default path per round; one step can take "
                        "over a minute at one thread (default: %(default)s)")
    p.add_argument("--mambapy-warmup", type=int, default=2,
                   help="untimed training steps of the HF mambapy path, once per thread setting "
                        "(default: %(default)s)")
    p.add_argument("--mambapy-steps", type=int, default=5,
                   help="timed training steps of the HF mambapy path per round (default: %(default)s)")
    p.add_argument("--mk-warmup", type=int, default=3,
                   help="untimed steps of each `mambakit bench train` (default: %(default)s)")
    p.add_argument("--mk-seconds", type=float, default=5.0,
                   help="timed seconds of each `mambakit bench train` (default: %(default)s)")
    p.add_argument("--gen-tokens", type=int, default=512,
                   help="tokens generated per timed generation (default: %(default)s)")
    p.add_argument("--gen-reps", type=int, default=5,
                   help="generation timings per side and round; their median is used (default: %(default)s)")
    p.add_argument("--skip-default", action="store_true",
                   help="do not train with HF's default (slow, sequential) path")
    p.add_argument("--skip-mambapy", action="store_true",
                   help="do not train with HF's mambapy path")
    p.add_argument("--skip-gen", action="store_true", help="do not time generation")
    p.add_argument("--seed", type=int, default=0, help="torch seed for the HF models (default: %(default)s)")
    p.add_argument("--json", metavar="PATH", help="also write every measurement to this JSON file")
    args = p.parse_args(argv)
    for name in ("repeats", "hf_steps", "mambapy_steps", "gen_tokens", "gen_reps"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    for name in ("hf_warmup", "mambapy_warmup", "mk_warmup"):
        if getattr(args, name) < 0:
            p.error(f"--{name.replace('_', '-')} must be non-negative")
    try:
        args.thread_list = parse_threads(args.threads)
    except ValueError as e:
        p.error(str(e))
    return args


def available_cpus():
    """How many CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def parse_threads(text):
    """'1,all' -> [1, ncpu] (duplicates dropped, order kept)."""
    out = []
    for part in text.split(","):
        part = part.strip().lower()
        if not part:
            continue
        n = available_cpus() if part == "all" else int(part)
        if n < 1:
            raise ValueError(f"--threads: {part!r} is not a positive count")
        if n not in out:
            out.append(n)
    if not out:
        raise ValueError("--threads: give at least one count")
    return out


def import_hf(need_mambapy):
    """Imports torch and transformers, or exits with the setup instructions."""
    try:
        import torch
        import transformers
    except ImportError as e:
        sys.exit(
            f"bench_vs_transformers: cannot import torch / transformers ({e}).\n"
            "Run it with the reference venv, made as tools/reference/README.md says:\n"
            "  python3 -m venv /opt/refenv\n"
            "  /opt/refenv/bin/pip install torch transformers safetensors numpy mambapy\n"
            "  /opt/refenv/bin/python tools/reference/bench_vs_transformers.py"
        )
    transformers.logging.set_verbosity_error()  # the "falling back to PyTorch" notices
    transformers.logging.disable_progress_bar()
    if need_mambapy:
        from transformers.utils import import_utils
        available = getattr(import_utils, "is_mambapy_available", lambda: False)()
        if not available:
            # Without the package, use_mambapy=True silently runs the default loop.
            sys.exit(
                "bench_vs_transformers: the `mambapy` package is not installed, and without it\n"
                "transformers runs use_mambapy=True models with the default sequential loop.\n"
                f"Install it ({sys.executable} -m pip install mambapy) or pass --skip-mambapy."
            )
    return torch, transformers


def cpu_model():
    """The CPU's model name from /proc/cpuinfo (or what platform says)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average():
    """The 1, 5 and 15 minute load averages, rounded."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def git_revision():
    """The repository's short commit, with '+dirty' when the work tree differs from it."""
    try:
        rev = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine_info(torch, transformers, mambakit):
    """What the figures depend on: CPU, load, versions, mambakit's SIMD level."""
    try:
        isa = json.loads(subprocess.run([mambakit, "info", "--system", "--json"], capture_output=True,
                                        text=True, check=True).stdout).get("isa")
    except (OSError, subprocess.CalledProcessError, ValueError):
        isa = "unknown"
    try:
        import mambapy  # noqa: F401  (only its presence and version matter)
        from importlib.metadata import version
        mambapy_version = version("mambapy")
    except Exception:
        mambapy_version = None
    return {
        "cpu": cpu_model(),
        "cpus_available": available_cpus(),
        "load_average": load_average(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "mambapy": mambapy_version,
        "torch_mkl": bool(torch.backends.mkl.is_available()),
        "mambakit": mambakit,
        "mambakit_isa": isa,
        "mambakit_git": git_revision(),
    }


# --- mambakit ------------------------------------------------------------------


def run_mambakit_train(exe, threads, warmup, seconds):
    """One `mambakit bench train` process on the benchmark model; returns its JSON object."""
    cmd = [exe, "bench", "train", "--d-model", str(D_MODEL), "--n-layer", str(N_LAYER),
           "--d-state", str(D_STATE), "--seq-len", str(SEQ_LEN), "--batch", str(BATCH),
           "--mixer", "mamba", "--threads", str(threads), "--warmup", str(warmup),
           "--seconds", str(seconds), "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"bench_vs_transformers: {' '.join(cmd)} failed ({out.returncode}):\n{out.stderr}")
    return json.loads(out.stdout)


def run_mambakit_generate(exe, model_dir, threads, tokens):
    """One `mambakit generate` process, greedy; returns (wall seconds, generated token list).

    The wall time includes the process start and the model load; callers
    subtract a run with --tokens 0 to remove them."""
    cmd = [exe, "generate", str(model_dir), "--prompt", PROMPT, "--tokens", str(tokens),
           "--temperature", "0", "--threads", str(threads)]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True)
    seconds = time.perf_counter() - t0
    if out.returncode != 0:
        sys.exit(f"bench_vs_transformers: {' '.join(cmd)} failed ({out.returncode}):\n"
                 f"{out.stderr.decode(errors='replace')}")
    # stdout is the prompt, the generated bytes and a newline.
    generated = list(out.stdout[len(PROMPT.encode()):len(PROMPT.encode()) + tokens])
    return seconds, generated


# --- HF transformers --------------------------------------------------------------


def make_hf_model(torch, transformers, use_mambapy, seed):
    """A freshly initialised MambaForCausalLM of the benchmark's shape (fp32, CPU)."""
    config = transformers.MambaConfig(
        hidden_size=D_MODEL, num_hidden_layers=N_LAYER, vocab_size=VOCAB, state_size=D_STATE,
        expand=EXPAND, conv_kernel=D_CONV, use_mambapy=use_mambapy, tie_word_embeddings=True)
    torch.manual_seed(seed)
    return transformers.MambaForCausalLM(config).float()


def count_params(model):
    """Distinct parameters (the tied LM head counted once)."""
    return sum(p.numel() for p in model.parameters())


class HFTrainer:
    """A HF model with its AdamW optimizer and one random byte batch, as `mambakit bench train` has."""

    def __init__(self, torch, transformers, use_mambapy, seed):
        self.torch = torch
        self.model = make_hf_model(torch, transformers, use_mambapy, seed).train()
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=LR, betas=BETAS,
                                           weight_decay=WEIGHT_DECAY)
        g = torch.Generator().manual_seed(seed + 1)
        self.ids = torch.randint(0, VOCAB, (BATCH, SEQ_LEN), generator=g)
        self.targets = torch.randint(0, VOCAB, (BATCH, SEQ_LEN), generator=g)
        self.params = count_params(self.model)

    def step(self):
        """Forward, cross-entropy over every position, backward, clipping, AdamW."""
        torch = self.torch
        self.optimizer.zero_grad(set_to_none=True)
        logits = self.model(self.ids, use_cache=False).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), self.targets.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), CLIP)
        self.optimizer.step()
        return loss.detach().item()

    def seconds_per_step(self, steps):
        """Mean wall seconds of `steps` consecutive steps."""
        t0 = time.perf_counter()
        for _ in range(steps):
            self.step()
        return (time.perf_counter() - t0) / steps


def hf_generate(torch, model, new_tokens):
    """Greedy `generate` with the cache; returns (wall seconds, generated token list)."""
    ids = torch.tensor([list(PROMPT.encode())])
    mask = torch.ones_like(ids)
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(ids, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                             do_sample=False, use_cache=True, eos_token_id=None, pad_token_id=0)
    seconds = time.perf_counter() - t0
    generated = out[0, ids.shape[1]:].tolist()
    if len(generated) != new_tokens:
        sys.exit(f"bench_vs_transformers: HF generate made {len(generated)} tokens, not {new_tokens}")
    return seconds, generated


# --- measurements -------------------------------------------------------------------


def median(xs):
    """The median, or None for no samples."""
    return statistics.median(xs) if xs else None


def common_prefix(a, b):
    """How many leading tokens two sequences share."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def time_generation(torch, args, threads, hf_model, model_dir):
    """Seconds for args.gen_tokens tokens on each side, start-up and prompt removed.

    mambakit: median wall time of `generate --tokens N` minus that of
    `--tokens 0` (process start, model load and the prompt step); each
    `--tokens N` run does N sampling + recurrent steps.
    HF: median wall time of generate(max_new_tokens=N+1) minus that of
    generate(max_new_tokens=1) (generate's set-up, the prompt and the first
    token); the difference is N cached decode steps with their sampling.
    The calls alternate, gen_reps of each."""
    n = args.gen_tokens
    mk_full, mk_base, hf_full, hf_base = [], [], [], []
    mk_tokens = hf_tokens = None
    for _ in range(args.gen_reps):
        s, mk_tokens = run_mambakit_generate(args.mambakit, model_dir, threads, n)
        mk_full.append(s)
        mk_base.append(run_mambakit_generate(args.mambakit, model_dir, threads, 0)[0])
        s, hf_tokens = hf_generate(torch, hf_model, n + 1)
        hf_full.append(s)
        hf_base.append(hf_generate(torch, hf_model, 1)[0])
    mk_s = median(mk_full) - median(mk_base)
    hf_s = median(hf_full) - median(hf_base)
    return {
        "mambakit_s": mk_s, "hf_s": hf_s,
        "mambakit_tokens_per_s": n / mk_s if mk_s > 0 else None,
        "hf_tokens_per_s": n / hf_s if hf_s > 0 else None,
        "mambakit_wall_s": mk_full, "mambakit_wall_0_tokens_s": mk_base,
        "hf_wall_s": hf_full, "hf_wall_1_token_s": hf_base,
        "greedy_agree_tokens": common_prefix(mk_tokens, hf_tokens[:n]),
    }


def bench_threads(torch, transformers, args, threads, model_dir, hf_gen_model, log):
    """All measurements at one thread count, interleaved over args.repeats rounds."""
    torch.set_num_threads(threads)
    tokens_per_step = BATCH * SEQ_LEN
    result = {"threads": threads, "torch_threads": torch.get_num_threads(), "load_before": load_average(),
              "mambakit_train": [], "hf_default_train_s_per_step": [], "hf_mambapy_train_s_per_step": [],
              "generation": []}

    trainers = {}
    if not args.skip_default:
        trainers["default"] = (HFTrainer(torch, transformers, False, args.seed), args.hf_warmup, args.hf_steps)
    if not args.skip_mambapy:
        trainers["mambapy"] = (HFTrainer(torch, transformers, True, args.seed), args.mambapy_warmup,
                               args.mambapy_steps)
    for name, (trainer, warmup, _) in trainers.items():
        t0 = time.perf_counter()
        for _ in range(warmup):
            trainer.step()
        if warmup:
            log(f"  HF {name}: {warmup} warm-up step(s), {(time.perf_counter() - t0) / warmup:.2f} s each")
    if not args.skip_gen:
        hf_generate(torch, hf_gen_model, 8)  # untimed: first-call set-up
        run_mambakit_generate(args.mambakit, model_dir, threads, 8)  # untimed: page cache

    for r in range(args.repeats):
        mk = run_mambakit_train(args.mambakit, threads, args.mk_warmup, args.mk_seconds)
        result["mambakit_train"].append(mk)
        line = f"  round {r + 1}/{args.repeats}: mambakit {mk['ms_per_step']:.1f} ms/step"
        if mk.get("params") is not None:
            result["mambakit_params"] = mk["params"]
        for name, (trainer, _, steps) in trainers.items():
            s = trainer.seconds_per_step(steps)
            result[f"hf_{name}_train_s_per_step"].append(s)
            line += f", HF {name} {s * 1e3:.0f} ms/step"
        if not args.skip_gen:
            g = time_generation(torch, args, threads, hf_gen_model, model_dir)
            result["generation"].append(g)
            line += (f", generate {args.gen_tokens}: mambakit {g['mambakit_s']:.3f} s, "
                     f"HF {g['hf_s']:.3f} s")
        log(line)

    # Medians and ratios (mambakit tokens/s over HF tokens/s).
    mk_tps = median([m["tokens_per_s"] for m in result["mambakit_train"]])
    summary = {"mambakit_train_tokens_per_s": mk_tps,
               "mambakit_train_ms_per_step": 1e3 * tokens_per_step / mk_tps}
    for name in trainers:
        s = median(result[f"hf_{name}_train_s_per_step"])
        summary[f"hf_{name}_train_ms_per_step"] = 1e3 * s
        summary[f"hf_{name}_train_tokens_per_s"] = tokens_per_step / s
        summary[f"train_ratio_vs_{name}"] = mk_tps / (tokens_per_step / s)
    if result["generation"]:
        mk_g = median([g["mambakit_s"] for g in result["generation"]])
        hf_g = median([g["hf_s"] for g in result["generation"]])
        if mk_g <= 0 or hf_g <= 0:
            sys.exit("bench_vs_transformers: generation took no measurable time beyond start-up; "
                     "raise --gen-tokens")
        summary.update({
            "gen_mambakit_s": mk_g, "gen_hf_s": hf_g,
            "gen_mambakit_tokens_per_s": args.gen_tokens / mk_g,
            "gen_hf_tokens_per_s": args.gen_tokens / hf_g,
            "gen_ratio": hf_g / mk_g,
            "greedy_agree_tokens": min(g["greedy_agree_tokens"] for g in result["generation"]),
        })
    result["hf_params"] = {name: t.params for name, (t, _, _) in trainers.items()}
    for name, n in result["hf_params"].items():
        if n != result.get("mambakit_params"):
            log(f"  WARNING: HF {name} has {n:,} parameters, mambakit's model {result.get('mambakit_params')}")
    result["summary"] = summary
    result["load_after"] = load_average()
    return result


# --- output ---------------------------------------------------------------------------


def fmt(x, unit=""):
    """A number with 3 significant figures or more (None as '-')."""
    if x is None:
        return "-"
    if abs(x) >= 100:
        return f"{x:,.0f}{unit}"
    if abs(x) >= 10:
        return f"{x:.1f}{unit}"
    return f"{x:.3g}{unit}"


def print_table(result, args):
    """The medians and ratios at one thread count, as a small text table."""
    s = result["summary"]
    print(f"\nthreads {result['threads']} (torch {result['torch_threads']}); load average "
          f"{result['load_before']} before, {result['load_after']} after; "
          f"medians of {args.repeats} interleaved round(s)")
    rows = [("training, batch 8 x 256", "ms/step", "tokens/s", "mambakit is")]
    rows.append(("  mambakit", fmt(s["mambakit_train_ms_per_step"]), fmt(s["mambakit_train_tokens_per_s"]), ""))
    for name, label in (("default", "  HF default (sequential loop)"), ("mambapy", "  HF use_mambapy=True")):
        if f"hf_{name}_train_ms_per_step" in s:
            rows.append((label, fmt(s[f"hf_{name}_train_ms_per_step"]), fmt(s[f"hf_{name}_train_tokens_per_s"]),
                         fmt(s[f"train_ratio_vs_{name}"], "x faster")))
    if "gen_ratio" in s:
        rows.append((f"generation, {args.gen_tokens} tokens", "s", "tokens/s", ""))
        rows.append(("  mambakit", fmt(s["gen_mambakit_s"]), fmt(s["gen_mambakit_tokens_per_s"]), ""))
        rows.append(("  HF generate (cache)", fmt(s["gen_hf_s"]), fmt(s["gen_hf_tokens_per_s"]),
                     fmt(s["gen_ratio"], "x faster")))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print(f"  {r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}")
    if "gen_ratio" in s:
        print(f"  greedy outputs agree on the first {s['greedy_agree_tokens']} of {args.gen_tokens} tokens")


def main(argv=None):
    """Runs the benchmark and prints (and optionally writes) its figures."""
    args = parse_args(argv)
    if not (os.path.isfile(args.mambakit) and os.access(args.mambakit, os.X_OK)):
        sys.exit(f"bench_vs_transformers: no mambakit binary at {args.mambakit} (build it, or pass --mambakit)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded
    torch, transformers = import_hf(need_mambapy=not args.skip_mambapy)

    def log(msg):
        print(msg, flush=True)

    info = machine_info(torch, transformers, args.mambakit)
    log(f"CPU: {info['cpu']} ({info['cpus_available']} available), load average {info['load_average']}")
    log(f"torch {info['torch']} (MKL {info['torch_mkl']}), transformers {info['transformers']}, "
        f"mambapy {info['mambapy']}, Python {info['python']}")
    log(f"mambakit {info['mambakit']} (git {info['mambakit_git']}, {info['mambakit_isa']})")
    log(f"model: d_model {D_MODEL}, {N_LAYER} layers, vocab {VOCAB}, state {D_STATE}, expand {EXPAND}, "
        f"conv {D_CONV}; training batch {BATCH} x {SEQ_LEN}, AdamW, fp32")

    results = []
    with tempfile.TemporaryDirectory(prefix="bench_vs_hf_") as tmp:
        # Generation: one set of weights, HF's, which mambakit reads from save_pretrained's files.
        model_dir = Path(tmp) / "hf_model"
        hf_gen_model = make_hf_model(torch, transformers, False, args.seed).eval()
        hf_gen_model.save_pretrained(model_dir)
        log(f"HF model: {count_params(hf_gen_model):,} parameters")
        for threads in args.thread_list:
            log(f"\n== {threads} thread(s)")
            results.append(bench_threads(torch, transformers, args, threads, model_dir, hf_gen_model, log))

    for r in results:
        print_table(r, args)
    print("\nTraining: steady-state steps after warm-up; mambakit `bench train` (its own process per round),")
    print("HF in this process. Generation: greedy, recurrent, from the same weights; start-up, model load")
    print("and the prompt are subtracted on both sides (see tools/reference/README.md). HF's cached")
    print("decode step is the same code for use_mambapy False and True, so it is timed once.")
    info["load_average_end"] = load_average()
    print(f"load average at the end: {info['load_average_end']}")

    if args.json:
        settings = {k: v for k, v in vars(args).items() if k != "json"}
        with open(args.json, "w") as f:
            json.dump({"machine": info, "settings": settings, "results": results}, f, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
