#!/usr/bin/env python3
"""A sharded bf16 HF Mamba checkpoint and transformers' greedy generation from it.

Builds a random MambaForCausalLM with a vocabulary larger than 256, saves it
the way transformers saves larger models (bf16 weights in shards plus
model.safetensors.index.json, config.json, generation_config.json), then
reloads it in float32 (the bf16 weights upcast exactly, so transformers
computes in fp32 from the same weights mambakit widens on load) and records
the greedy continuation of a fixed prompt of token ids, with and without
stopping at eos_token_id. The C++ tests run `mambakit generate` and
`mambakit logits` on the directory and compare.

Never needed by the build or CI; see README.md beside this file.

    python tools/reference/make_sharded_fixture.py                 # the committed tiny fixture
    python tools/reference/make_sharded_fixture.py --size 130m --out /tmp/mamba130m_bf16 \\
        --max-shard-size 100MB --tokens 40 --no-eos-choice        # the 130M shape, by hand
"""
import argparse
import copy
import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hub kernels, no downloads

import numpy as np
import torch
from transformers import MambaConfig, MambaForCausalLM

SHAPES = {
    # hidden, layers, vocab: the tiny model keeps the fixture well under 1 MB.
    "tiny": dict(hidden_size=64, num_hidden_layers=2, vocab_size=1000),
    # state-spaces/mamba-130m-hf's shape.
    "130m": dict(hidden_size=768, num_hidden_layers=24, vocab_size=50280),
}
PROMPT_IDS = [510, 315, 851, 17, 4, 999, 1, 275]  # all < 1000: valid in both shapes
PERTURB = 0.1  # random nudges to parameters HF initialises to constants (see make_fixtures.py)
# HF's initialisation leaves the mixers' contribution small beside the
# residual stream, and with the head tied to the embedding a random model
# then predicts its last input token forever: greedy generation would not
# exercise the recurrence at all. Scaling the mixer's projections up makes
# every step's choice depend on the state (24 distinct tokens of 24 at 3x).
MIXER_SCALE = 3.0


def build_model(shape: str, seed: int, mixer_scale: float) -> MambaForCausalLM:
    config = MambaConfig(
        **SHAPES[shape],
        state_size=16,
        expand=2,
        conv_kernel=4,
        use_bias=False,
        use_conv_bias=True,
        tie_word_embeddings=True,
        layer_norm_epsilon=1e-5,
        use_mambapy=False,
        use_associative_scan=False,
        pad_token_id=0,
        bos_token_id=0,
        eos_token_id=0,
    )
    torch.manual_seed(seed)
    model = MambaForCausalLM(config).float()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("A_log", ".D", "norm.weight", "norm_f.weight", "conv1d.bias", "dt_proj.bias")):
                p.add_(PERTURB * torch.randn(p.shape, generator=g, dtype=p.dtype))
            if name.endswith(("in_proj.weight", "x_proj.weight", "out_proj.weight")):
                p.mul_(mixer_scale)
    model.eval()
    return model


def greedy(model, prompt, tokens, eos):
    """transformers' greedy generate; returns (new ids, smallest top-1 minus
    top-2 logit gap over the steps: how far from a tie each choice was)."""
    ids = torch.tensor([prompt], dtype=torch.long)
    # transformers fills a None eos_token_id argument from the model's
    # generation config: set that itself, so that None means "no eos".
    saved = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = eos
    try:
        with torch.no_grad():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=tokens,
                                 do_sample=False, pad_token_id=0, output_logits=True,
                                 return_dict_in_generate=True)
    finally:
        model.generation_config.eos_token_id = saved
    new = out.sequences[0, len(prompt):].tolist()
    gaps = [float((l[0].topk(2).values[0] - l[0].topk(2).values[1])) for l in out.logits]
    return new, min(gaps)


def choose_eos(seq, prompt, first=8):
    """A token of seq (at position >= first) that appears neither earlier nor
    in the prompt: with it as eos, greedy generation stops right after it."""
    for k in range(first, len(seq)):
        if seq[k] not in seq[:k] and seq[k] not in prompt:
            return seq[k], k
    raise SystemExit(f"no token usable as eos in the greedy sequence {seq}; try another --seed")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument("--out", default=os.path.join(root, "libmamba/tests/data/hf_mamba_sharded_bf16"))
    ap.add_argument("--size", choices=sorted(SHAPES), default="tiny")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tokens", type=int, default=24, help="max_new_tokens")
    ap.add_argument("--max-shard-size", default="100KB")
    ap.add_argument("--mixer-scale", type=float, default=MIXER_SCALE)
    ap.add_argument("--no-eos-choice", action="store_true",
                    help="keep eos_token_id 0 (no eos run): the 130M check")
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)

    model = build_model(args.size, args.seed, args.mixer_scale)
    # The fp32 model whose weights are exactly the bf16 ones, upcast.
    model = model.to(torch.bfloat16).to(torch.float32)
    full, gap_full = greedy(model, PROMPT_IDS, args.tokens, eos=None)
    assert len(full) == args.tokens, full
    eos, stop_at = (None, None) if args.no_eos_choice else choose_eos(full, PROMPT_IDS)
    if eos is not None:
        model.config.eos_token_id = eos
        model.generation_config.eos_token_id = eos

    os.makedirs(args.out, exist_ok=True)
    model.to(torch.bfloat16).save_pretrained(args.out, max_shard_size=args.max_shard_size)

    # Back from disk, as a user would load it: bf16 on disk -> fp32 compute.
    t0 = time.time()
    hf = MambaForCausalLM.from_pretrained(args.out, dtype=torch.float32).eval()
    load_s = time.time() - t0
    again, _ = greedy(hf, PROMPT_IDS, args.tokens, eos=None)
    assert again == full, "the reloaded model generates differently"
    expected = {
        "prompt_ids": PROMPT_IDS,
        "max_new_tokens": args.tokens,
        "greedy_no_eos": full,
        "min_top2_gap_no_eos": gap_full,
        "mixer_scale": args.mixer_scale,
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
    }
    if eos is not None:
        stopped, _ = greedy(hf, PROMPT_IDS, args.tokens, eos=eos)
        assert stopped == full[:stop_at + 1], (stopped, full)
        expected.update({"eos_token_id": eos, "greedy_eos": stopped})
        with torch.no_grad():
            logits = hf(torch.tensor([PROMPT_IDS])).logits[0].float().numpy()
        np.save(os.path.join(args.out, "prompt_logits.npy"), logits)  # (len(prompt), vocab)
    with open(os.path.join(args.out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=2)
        f.write("\n")

    print(json.dumps({k: v for k, v in expected.items() if not isinstance(v, list)}))
    print(f"transformers from_pretrained (bf16 shards -> fp32): {load_s:.2f} s")
    print("greedy (no eos):", " ".join(map(str, full)))
    total = 0
    for fn in sorted(os.listdir(args.out)):
        size = os.path.getsize(os.path.join(args.out, fn))
        total += size
        print(f"  {fn}: {size} bytes")
    print(f"total {total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
