#!/usr/bin/env python3
"""PyTorch baselines for bench/gpu_scan.sh, and its plot.

  gpu_scan_reference.py time --lengths 512,1024,... --out gpu_scan.csv
      Appends rows  impl,dtype,batch,dim,dstate,seqlen,pass,ms  for
        torch_ref_scan    the sequential selective scan in plain PyTorch (the
                          style of mamba_ssm's selective_scan_ref: the
                          discretised A and B*u are materialised for every
                          (b, d, t, n), then a Python loop over t), with the
                          same D skip, z gate and softplus(delta + bias) as the
                          fused kernel; run while a single run stays under
                          --ref-max-s;
        torch_sdpa_flash  scaled_dot_product_attention restricted to the flash
                          backend, causal, at the same length and width
                          (dim / headdim heads of headdim; dstate column 0).
      pass is fwd or fwdbwd (forward, then backward of a random output
      gradient). Times: CUDA events, median of several runs after a warm-up.
      --budget-s S bounds the wall time of the whole command: the reference
      scan takes no new length after half of it, attention none after all
      of it, the first length always runs (0: no bound beyond --ref-max-s /
      --attn-max-s).

  gpu_scan_reference.py plot gpu_scan.csv gpu_scan.png
      Milliseconds against sequence length, log-log, forward and
      forward+backward side by side (matplotlib).

  gpu_scan_reference.py table gpu_scan.csv
      The same numbers as a text table (no third-party module needed).
"""
import argparse
import csv
import statistics
import sys
import time

HEADER = ["impl", "dtype", "batch", "dim", "dstate", "seqlen", "pass", "ms"]


def selective_scan_ref(u, delta, A, B, C, D, z, delta_bias):
    """u, delta, z: (batch, dim, L); A: (dim, N); B, C: (batch, N, L);
    D, delta_bias: (dim). Returns y (batch, dim, L) in u's dtype.
    Arithmetic in fp32, as the fused kernel."""
    import torch
    import torch.nn.functional as F

    dtype = u.dtype
    u, z, B, C, A, D = u.float(), z.float(), B.float(), C.float(), A.float(), D.float()
    delta = F.softplus(delta.float() + delta_bias.float()[None, :, None])
    # Discretisation for every (b, d, t, n): exp(delta A) and delta B u.
    dA = torch.exp(delta.unsqueeze(-1) * A[None, :, None, :])            # (b, d, L, N)
    dBu = (delta * u).unsqueeze(-1) * B.transpose(1, 2).unsqueeze(1)      # (b, d, L, N)
    h = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])                   # (b, d, N)
    ys = []
    for t in range(u.shape[2]):
        h = dA[:, :, t] * h + dBu[:, :, t]
        ys.append(torch.einsum("bdn,bn->bd", h, C[:, :, t]))
    y = torch.stack(ys, dim=2) + u * D[None, :, None]
    return (y * F.silu(z)).to(dtype)


def timed(fn, dev, warm=True):
    """(median ms, seconds of the first run). CUDA events on the GPU; the
    host clock for --device cpu (a smoke test of this script)."""
    import torch

    cuda = dev.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    first = time.perf_counter() - t0
    # Too slow to repeat much: one more run, else as many as fit ~0.5 s.
    reps = max(1, min(20, int(0.5 / max(first, 1e-4)))) if warm else 1
    times = []
    for _ in range(reps):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append(1e3 * (time.perf_counter() - t0))
    return statistics.median(times), first


def empty_cache():
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def out_of_time(args, impl, L, share=1.0):
    """True (with a message) when the --budget-s share of this implementation
    is spent, so that length L is not started."""
    if not args.budget_s or args.budget_s <= 0 or L == args.lengths[0]:
        return False  # no budget; the first length always runs
    if time.monotonic() - args.t_start < share * args.budget_s:
        return False
    print(f"  {impl}: time budget ({share * args.budget_s:.0f} s) spent; stopping before L={L}",
          file=sys.stderr, flush=True)
    return True


def write_row(out, args, impl, L, pass_name, ms, dstate=None):
    row = [impl, args.dtype, args.batch, args.dim, args.dstate if dstate is None else dstate, L,
           pass_name, f"{ms:.6g}"]
    out.writerow(row)
    print(f"  {impl:18s} {args.dtype:5s} L={L:<7d} {pass_name:7s} {ms:12.4f} ms", file=sys.stderr,
          flush=True)


def time_ref_scan(args, out, dev, dtype):
    import torch

    gen = torch.Generator(device=dev).manual_seed(0)
    # One tiny forward and backward first: the first run of a process pays
    # for CUDA's start-up, which would count against the first length's
    # stopping test.
    w = [torch.randn(1, 4, 8, device=dev).requires_grad_(True) for _ in range(3)]
    wbc = [torch.randn(1, args.dstate, 8, device=dev) for _ in range(2)]
    A = -torch.ones(4, args.dstate, device=dev)
    selective_scan_ref(w[0], w[1], A, wbc[0], wbc[1], torch.ones(4, device=dev), w[2],
                       torch.zeros(4, device=dev)).sum().backward()
    for L in args.lengths:
        if out_of_time(args, "torch_ref_scan", L, share=0.5):
            return
        shape = (args.batch, args.dim, L)
        try:
            def make(*s, scale=1.0, shift=0.0, dt=dtype):
                x = torch.randn(*s, device=dev, generator=gen) * scale + shift
                return x.to(dt).requires_grad_(True)
            u, z = make(*shape), make(*shape)
            delta = make(*shape, shift=-2.0)
            B = make(args.batch, args.dstate, L)
            C = make(args.batch, args.dstate, L)
            A = (-torch.arange(1, args.dstate + 1, device=dev, dtype=torch.float32)
                 .repeat(args.dim, 1)).requires_grad_(True)
            D = torch.ones(args.dim, device=dev, requires_grad=True)
            bias = make(args.dim, scale=0.5, dt=torch.float32)
            dout = torch.randn(*shape, device=dev, generator=gen).to(dtype)
            inputs = (u, delta, A, B, C, D, z, bias)

            def fwd():
                with torch.no_grad():
                    selective_scan_ref(*inputs)

            def fwdbwd():
                for x in inputs:
                    x.grad = None
                selective_scan_ref(*inputs).backward(dout)

            ms, first = timed(fwd, dev, warm=L <= 8192)
            write_row(out, args, "torch_ref_scan", L, "fwd", ms)
            ms_b, first_b = timed(fwdbwd, dev, warm=L <= 4096)
            write_row(out, args, "torch_ref_scan", L, "fwdbwd", ms_b)
            del inputs, u, z, delta, B, C, A, D, bias, dout
            empty_cache()
            # Linear in L: the next length takes about twice as long.
            if 2.2 * max(first, first_b) > args.ref_max_s:
                print(f"  torch_ref_scan: next length would exceed {args.ref_max_s} s; stopping",
                      file=sys.stderr)
                return
        except torch.cuda.OutOfMemoryError:
            print(f"  torch_ref_scan: out of memory at L={L}; stopping", file=sys.stderr)
            empty_cache()
            return


def time_sdpa(args, out, dev, dtype):
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    heads = args.dim // args.headdim
    gen = torch.Generator(device=dev).manual_seed(1)
    try:  # a first small call: start-up costs out of the timings' stopping test
        q = torch.randn(1, 1, 256, args.headdim, device=dev).to(dtype).requires_grad_(True)
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            F.scaled_dot_product_attention(q, q, q, is_causal=True).sum().backward()
    except RuntimeError:
        pass  # the timed loop reports it
    for L in args.lengths:
        if out_of_time(args, "torch_sdpa_flash", L):
            return
        shape = (args.batch, heads, L, args.headdim)
        try:
            q, k, v = (torch.randn(*shape, device=dev, generator=gen).to(dtype).requires_grad_(True)
                       for _ in range(3))
            do = torch.randn(*shape, device=dev, generator=gen).to(dtype)

            def fwd():
                with torch.no_grad(), sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                    F.scaled_dot_product_attention(q, k, v, is_causal=True)

            def fwdbwd():
                for x in (q, k, v):
                    x.grad = None
                with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                    F.scaled_dot_product_attention(q, k, v, is_causal=True).backward(do)

            ms, first = timed(fwd, dev)
            write_row(out, args, "torch_sdpa_flash", L, "fwd", ms, dstate=0)
            ms_b, first_b = timed(fwdbwd, dev)
            write_row(out, args, "torch_sdpa_flash", L, "fwdbwd", ms_b, dstate=0)
            del q, k, v, do
            empty_cache()
            # Quadratic in L: the next length takes about four times as long.
            if 4.5 * max(first, first_b) > args.attn_max_s:
                print(f"  torch_sdpa_flash: next length would exceed {args.attn_max_s} s; stopping",
                      file=sys.stderr)
                return
        except torch.cuda.OutOfMemoryError:
            print(f"  torch_sdpa_flash: out of memory at L={L}; stopping", file=sys.stderr)
            empty_cache()
            return
        except RuntimeError as e:  # e.g. no flash kernel for this GPU / dtype / head size
            print(f"  torch_sdpa_flash: {e}; stopping", file=sys.stderr)
            return


def cmd_time(args):
    import torch

    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print("gpu_scan_reference: no CUDA device visible to PyTorch", file=sys.stderr)
        return 1
    dtype = {"bf16": torch.bfloat16, "f32": torch.float32}[args.dtype]
    name = torch.cuda.get_device_name() if dev.type == "cuda" else "cpu"
    print(f"gpu_scan_reference on {name} (torch {torch.__version__})", file=sys.stderr)
    with open(args.out, "a", newline="") as f:
        out = csv.writer(f)
        if f.tell() == 0:
            out.writerow(HEADER)
        if "ref" in args.impls:
            time_ref_scan(args, out, dev, dtype)
            f.flush()
        if "sdpa" in args.impls:
            time_sdpa(args, out, dev, dtype)
    return 0


def cmd_plot(args):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = {}
    with open(args.csv) as f:
        for r in csv.DictReader(f):
            key = (r["pass"], f'{r["impl"]} ({r["dtype"]})')
            series.setdefault(key, []).append((int(r["seqlen"]), float(r["ms"])))
    fig, axes = plt.subplots(1, 2, figsize=(13, 5), sharey=True)
    for ax, pass_name, title in ((axes[0], "fwd", "forward"),
                                 (axes[1], "fwdbwd", "forward + backward")):
        for (p, label), pts in sorted(series.items()):
            if p != pass_name:
                continue
            pts.sort()
            ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", label=label)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("time (ms)")
    fig.suptitle(args.title)
    fig.tight_layout()
    fig.savefig(args.png, dpi=120)
    return 0


def cmd_table(args):
    """The CSV as a table: one row per sequence length, one column per
    implementation and pass (ms)."""
    cols, rows = [], {}
    with open(args.csv) as f:
        for r in csv.DictReader(f):
            c = f'{r["impl"]}/{r["dtype"]}/{r["pass"]}'
            if c not in cols:
                cols.append(c)
            rows.setdefault(int(r["seqlen"]), {})[c] = float(r["ms"])
    width = max([len(c) for c in cols] + [10])
    print("seqlen".rjust(8) + "".join(c.rjust(width + 2) for c in cols))
    for L in sorted(rows):
        cells = (f"{rows[L][c]:.4g}" if c in rows[L] else "-" for c in cols)
        print(str(L).rjust(8) + "".join(x.rjust(width + 2) for x in cells))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("time")
    t.add_argument("--lengths", default="512,1024,2048,4096,8192,16384,32768,65536,131072,262144")
    t.add_argument("--batch", type=int, default=1)
    t.add_argument("--dim", type=int, default=1024)
    t.add_argument("--dstate", type=int, default=16)
    t.add_argument("--headdim", type=int, default=64)
    t.add_argument("--dtype", choices=["bf16", "f32"], default="bf16")
    t.add_argument("--ref-max-s", type=float, default=8.0,
                   help="stop the sequential reference before a run would exceed this")
    t.add_argument("--attn-max-s", type=float, default=20.0,
                   help="stop attention before a run would exceed this")
    t.add_argument("--budget-s", type=float, default=0.0,
                   help="wall-clock budget of the whole command (0: none)")
    t.add_argument("--impls", default="ref,sdpa")
    t.add_argument("--device", default="cuda", help="cpu: a smoke test of this script")
    t.add_argument("--out", required=True)
    p = sub.add_parser("plot")
    p.add_argument("csv")
    p.add_argument("png")
    p.add_argument("--title", default="selective scan vs attention")
    tb = sub.add_parser("table")
    tb.add_argument("csv")
    args = ap.parse_args()
    if args.cmd == "table":
        return cmd_table(args)
    if args.cmd == "time":
        args.lengths = [int(x) for x in args.lengths.split(",")]
        args.impls = args.impls.split(",")
        args.t_start = time.monotonic()
        return cmd_time(args)
    return cmd_plot(args)


if __name__ == "__main__":
    sys.exit(main())
