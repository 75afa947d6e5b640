#!/usr/bin/env python3
"""Reference fixtures from HF transformers' MambaForCausalLM.

Builds a tiny random Mamba language model (float32, CPU, the sequential
"slow" scan), saves it as a HF checkpoint, and records the logits, the loss
and the gradient of the loss w.r.t. every parameter for one fixed byte
sequence. The C++ tests load the checkpoint into mambakit and compare.

Never needed by the build or CI; see README.md beside this file.

    python tools/reference/make_fixtures.py [--out libmamba/tests/data/hf_mamba_tiny]
"""
import argparse
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hub kernels, no downloads

import torch
from safetensors.torch import save_file
from transformers import MambaConfig, MambaForCausalLM

# 48 bytes of plain ASCII: the token ids are the byte values (vocab 256).
SENTENCE = b"Mamba: selective state spaces, linear in length."
assert len(SENTENCE) == 48
PERTURB = 0.1  # size of the random nudges to parameters HF initialises to constants


def build_model() -> MambaForCausalLM:
    config = MambaConfig(
        hidden_size=64,
        num_hidden_layers=2,
        vocab_size=256,
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
    torch.manual_seed(0)
    model = MambaForCausalLM(config).float()
    # HF initialises A_log to log(1..N), D and norm weights to 1 and the conv
    # bias to 0: identical rows would hide indexing mistakes (a transposed
    # A_log, a D applied to the wrong channel), so nudge them all randomly.
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("A_log", ".D", "norm.weight", "norm_f.weight",
                              "conv1d.bias", "dt_proj.bias")):
                p.add_(PERTURB * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


def run(model: MambaForCausalLM, input_ids: torch.Tensor):
    """Forward with labels=input_ids (HF shifts them: mean CE over L-1
    positions), backward; returns logits (L, V), loss and {name: grad}."""
    model.zero_grad(set_to_none=True)
    out = model(input_ids=input_ids, labels=input_ids, use_cache=False)
    out.loss.backward()
    # named_parameters() lists the tied embedding once, as
    # backbone.embeddings.weight, holding the sum of both uses' gradients.
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    return out.logits.detach()[0], out.loss.detach(), grads


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument("--out", default=os.path.join(root, "libmamba/tests/data/hf_mamba_tiny"))
    args = ap.parse_args()

    torch.use_deterministic_algorithms(True)
    model = build_model()
    # eval(): HF's training branch tries the fused CUDA kernel first; eval
    # goes straight to the sequential torch scan. Mamba has no dropout, so
    # the gradients are the training gradients.
    model.eval()

    os.makedirs(args.out, exist_ok=True)
    model.save_pretrained(args.out, safe_serialization=True)
    gen = os.path.join(args.out, "generation_config.json")
    if os.path.exists(gen):
        os.remove(gen)

    input_ids = torch.tensor([list(SENTENCE)], dtype=torch.long)  # (1, L)
    L = input_ids.shape[1]
    logits, loss, grads = run(model, input_ids)

    fixture = {
        "input_ids": input_ids[0].to(torch.int32).contiguous(),  # (L)
        "logits": logits.float().contiguous(),                  # (L, V)
        "loss": loss.float().reshape(1),                        # (1)
    }
    for name, g in grads.items():
        fixture["grad." + name] = g.float().contiguous()

    # No float64 fixture: HF's Mamba casts to float32 inside even after
    # model.double() (RMSNorm, the fp32 residual, A, B, u in the scan, the
    # logits and the loss), so a "double" run is not a double reference.

    metadata = {
        "sentence": SENTENCE.decode("ascii"),
        "seq_len": str(L),
        "loss": "HF shifted mean cross-entropy over L-1 positions (labels=input_ids)",
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
    }
    save_file(fixture, os.path.join(args.out, "fixture.safetensors"), metadata=metadata)

    print(f"sequence length {L}, loss {loss.item():.6f}")
    print("state_dict (name, shape, dtype) as saved in model.safetensors:")
    from safetensors import safe_open
    with safe_open(os.path.join(args.out, "model.safetensors"), "pt") as f:
        for k in sorted(f.keys()):
            t = f.get_tensor(k)
            print(f"  {k:45s} {tuple(t.shape)} {t.dtype}")
    total = 0
    for fn in sorted(os.listdir(args.out)):
        size = os.path.getsize(os.path.join(args.out, fn))
        total += size
        print(f"  {fn}: {size} bytes")
    print(f"total {total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
