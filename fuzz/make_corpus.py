#!/usr/bin/env python3
"""Writes the committed seed corpora under fuzz/corpus/<harness>/.

Seeds are small valid files of each format (plus a few near-misses), copied
from the repository's test data where it is small enough, otherwise built
here by the format's specification. Run from anywhere:
    python3 fuzz/make_corpus.py
It only needs Python 3 (sox, if present, adds FLAC/OGG/AIFF audio seeds).
Findings of the fuzzers are added by hand as regression tests and, where
useful, as seeds (fuzz/corpus/<harness>/crash-*), never by this script.
"""
import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fuzz", "corpus")


def put(harness, name, data):
    d = os.path.join(OUT, harness)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def copy(harness, name, src):
    with open(os.path.join(ROOT, src), "rb") as f:
        put(harness, name, f.read())


# --- safetensors ---------------------------------------------------------------


def safetensors(tensors, metadata=None, pad=True):
    """tensors: list of (name, dtype, shape, raw bytes)."""
    header, data = {}, b""
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


def f32(*v):
    return struct.pack("<%df" % len(v), *v)


def seeds_safetensors():
    put("safetensors", "f32.safetensors",
        safetensors([("a", "F32", [2, 2], f32(1, 2, 3, 4)), ("b", "F32", [1], f32(0.5))], {"format": "pt"}))
    put("safetensors", "bf16_f16.safetensors",
        safetensors([("w", "BF16", [3], struct.pack("<3H", 0x3F80, 0xC000, 0x0001)),
                     ("h", "F16", [2, 1], struct.pack("<2H", 0x3C00, 0x0001))]))
    put("safetensors", "ints.safetensors",
        safetensors([("i", "I64", [2], struct.pack("<2q", 7, -3)), ("j", "I32", [1], struct.pack("<i", 9)),
                     ("u", "U8", [4], b"\x00\x01\xfe\xff"), ("d", "F64", [1], struct.pack("<d", 2.5))]))
    put("safetensors", "empty_tensor.safetensors", safetensors([("e", "F32", [0, 3], b""), ("s", "F32", [], f32(1))]))
    put("safetensors", "truncated.safetensors",
        safetensors([("a", "F32", [4], f32(1, 2, 3, 4))])[:-5])


# --- model config.json ----------------------------------------------------------


def seeds_model_config():
    copy("model_config", "hf_mamba_tiny.json", "libmamba/tests/data/hf_mamba_tiny/config.json")
    copy("model_config", "hf_mamba_sharded.json", "libmamba/tests/data/hf_mamba_sharded_bf16/config.json")
    put("model_config", "hybrid.json", json.dumps({
        "model_type": "mamba", "hidden_size": 64, "num_hidden_layers": 4, "vocab_size": 300,
        "state_size": 8, "expand": 2, "conv_kernel": 4, "time_step_rank": "auto",
        "bos_token_id": None, "eos_token_id": [2, 3], "pad_token_id": 1,
        "mambakit_mixers": ["mamba", "attention", "s4d", "mlp"], "mambakit_n_heads": 2,
        "mambakit_rope_theta": 10000.0, "mambakit_mlp_hidden": 96, "mambakit_s4_d_state": 8,
        "mambakit_s4d_init": "inv", "mambakit_bidirectional": False, "mambakit_n_classes": 3,
        "mambakit_pooling": "last", "mambakit_pair_classifier": True}, indent=1))


# --- YAML experiment configs -----------------------------------------------------


def seeds_yaml_config():
    for name in ("quickstart", "selective_copying_mamba", "lra_listops_small", "dna_pretrain", "audio_piano",
                 "induction_heads_attention"):
        copy("yaml_config", name + ".yaml", "experiments/%s.yaml" % name)
    cdir = os.path.join(ROOT, "experiments", "tests", "configs")
    for name in sorted(os.listdir(cdir)):
        copy("yaml_config", "test_" + name, os.path.join("experiments", "tests", "configs", name))
    put("yaml_config", "aliases.yaml",
        "model: &m {d_model: 32, n_layer: 1}\ntask:\n  name: selective_copying\n  opts: &o [1, 2, {a: *m}]\n"
        "  more: [*o, *o]\ndata: {seq_len: 16}\ntrain: {steps: 1}\noutput: {dir: runs/x}\n")


# --- FASTA / FASTQ ---------------------------------------------------------------


def seeds_fasta():
    fa = ">chr1 first\nACGTACGTAC\nGTACGTACGT\nACG\n>chr2\nNNNNacgtRYKM\n"
    fq = "@r1 x\nACGTN\n+\nIIIII\n@r2\nAC\nGT\n+r2\nII\nII\n"
    put("fasta", "two.fa", fa)
    put("fasta", "crlf.fa", fa.replace("\n", "\r\n"))
    put("fasta", "reads.fq", fq)
    put("fasta", "gzip.fa.gz", gzip.compress(fa.encode(), mtime=0))
    bgzip = shutil.which("bgzip")
    if bgzip:
        with tempfile.TemporaryDirectory() as t:
            p = os.path.join(t, "x.fa")
            with open(p, "w") as f:
                f.write(fa)
            subprocess.run([bgzip, "-f", p], check=True)
            with open(p + ".gz", "rb") as f:
                put("fasta", "bgzf.fa.gz", f.read())
    put("fasta", "bad_lines.fa", ">a\nACGTACGT\nAC\nACGT\n")


# --- audio -------------------------------------------------------------------------


def wav(samples, rate=8000, channels=1, bits=16, fmt=1):
    width = bits // 8
    if fmt == 3:
        raw = struct.pack("<%df" % len(samples), *samples)
    elif bits == 8:
        raw = bytes(int((s + 1) * 127.5) for s in samples)
    else:
        raw = struct.pack("<%dh" % len(samples), *[int(s * 32767) for s in samples])
    fmt_chunk = struct.pack("<HHIIHH", fmt, channels, rate, rate * channels * width, channels * width, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt_chunk)) + fmt_chunk + b"data" + struct.pack("<I", len(raw)) + raw
    return b"RIFF" + struct.pack("<I", len(body)) + body


def seeds_audio():
    tone = [((i * 37) % 64 - 32) / 40.0 for i in range(64)]
    put("audio", "pcm16.wav", wav(tone))
    put("audio", "pcm8_stereo.wav", wav(tone, rate=11025, channels=2, bits=8))
    put("audio", "float.wav", wav(tone[:32], rate=16000, bits=32, fmt=3))
    sox = shutil.which("sox")
    if sox:
        with tempfile.TemporaryDirectory() as t:
            src = os.path.join(t, "in.wav")
            with open(src, "wb") as f:
                f.write(wav(tone * 4))
            for ext in ("flac", "aiff", "au", "ogg"):
                dst = os.path.join(t, "out." + ext)
                if subprocess.run([sox, src, dst], capture_output=True).returncode == 0:
                    with open(dst, "rb") as f:
                        put("audio", "tone." + ext, f.read())


# --- token shards and manifest ---------------------------------------------------------


def shard(tokens, dtype=1, vocab=256, kind="text", offsets=None):
    fmt = {1: "B", 2: "H", 3: "i"}[dtype]
    segs = len(offsets) - 1 if offsets else 0
    h = b"MKTOKENS" + struct.pack("<IIQQII", 1, dtype, len(tokens), segs, vocab, 64)
    h += kind.encode().ljust(16, b"\0") + b"\0" * 8
    body = struct.pack("<%d%s" % (len(tokens), fmt), *tokens)
    table = struct.pack("<%dQ" % len(offsets), *offsets) if offsets else b""
    return h + body + table


def seeds_shard():
    put("shard", "u8.mkshard", shard(list(b"hello world, hello shards")))
    put("shard", "u16_docs.mkshard", shard([1, 300, 2, 4000, 5, 6, 7, 8], 2, 5000, "text", [0, 3, 8]))
    put("shard", "i32_dna.mkshard", shard([0, 1, 2, 3, 4, 5, 6, 7, 8], 3, 9, "dna", [0, 4, 4, 9]))
    put("manifest", "manifest.json", json.dumps({
        "format": "mambakit-token-shards", "version": 1, "kind": "text", "vocab_size": 256,
        "inputs": ["corpus.txt"], "split_fractions": [0.9, 0.1], "seed": 1,
        "splits": {"train": {"file": "train.mkshard", "tokens": 64}, "val": {"file": "val.mkshard", "tokens": 64}}},
        indent=2))
    put("manifest", "audio.json", json.dumps({
        "format": "mambakit-token-shards", "version": 1, "kind": "text", "vocab_size": 256, "sample_rate": 16000,
        "splits": {"train": {"file": "train.mkshard", "tokens": 64}}}))


# --- LRA ----------------------------------------------------------------------------------


def seeds_lra_text():
    put("lra_text", "listops.tsv", "Source\tTarget\n( ( [MAX 2 9 ) ] )\t9\n( [SM 1 ( [MIN 3 4 ] ) ] )\t4\n")
    put("lra_text", "text.tsv", "label\ttext\n0\tan example text\r\n1\tanother one\n3\t\n")
    put("lra_text", "retrieval.tsv", "1.0\tid1\tid2\tfirst document\tsecond document\n0\ta\tb\tx\ty\n")
    put("lra_text", "pathfinder.npy", "imgs/0 sample_0.png 0 1 14 2\nimgs/0 sample_0.png 1 0\n")


def idx(dims, data):
    return struct.pack(">I", 0x800 | len(dims)) + b"".join(struct.pack(">I", d) for d in dims) + bytes(data)


def seeds_lra_image():
    images = idx([2, 3, 3], range(18))
    labels = idx([2], [3, 9])
    put("lra_image", "idx.bin", images + labels)
    put("lra_image", "idx_gz.bin", gzip.compress(images, mtime=0) + labels)
    rec = bytes([7]) + bytes((i * 7) % 256 for i in range(3072))
    put("lra_image", "cifar.bin", rec)


def png(width, height, color_type, bit_depth, rows, interlace=0, plte=None, trns=None):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\0" + r for r in rows)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, interlace))
    if plte:
        out += chunk(b"PLTE", plte)
    if trns:
        out += chunk(b"tRNS", trns)
    return out + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def seeds_png():
    put("png", "gray8.png", png(4, 3, 0, 8, [bytes([0, 64, 128, 255])] * 3))
    put("png", "gray1.png", png(8, 2, 0, 1, [b"\xa5", b"\x5a"]))
    put("png", "gray16.png", png(2, 2, 0, 16, [b"\x00\x01\xff\xff"] * 2))
    put("png", "rgb.png", png(2, 2, 2, 8, [bytes([255, 0, 0, 0, 255, 0])] * 2))
    put("png", "rgba.png", png(1, 2, 6, 8, [bytes([1, 2, 3, 4])] * 2))
    put("png", "palette.png", png(3, 1, 3, 8, [bytes([0, 1, 2])], plte=bytes([0, 0, 0, 255, 0, 0, 0, 255, 0]),
                                  trns=b"\x80"))
    # Adam7 interlacing: rows are per pass; a 1x1 image has one pass with data.
    put("png", "interlaced.png", png(1, 1, 0, 8, [b"\x7f"], interlace=1))


# --- tokenizer.json -----------------------------------------------------------------------


def byte_chars():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def seeds_tokenizer_bpe():
    bc = byte_chars()
    vocab = {bc[b]: b + 1 for b in range(256)}
    vocab["<|endoftext|>"] = 0
    merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("l", "l"), ("ll", "o")]
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    tok = {
        "version": "1.0",
        "added_tokens": [{"id": 0, "content": "<|endoftext|>", "special": True, "normalized": False,
                          "lstrip": False, "rstrip": False, "single_word": False},
                         {"id": len(vocab), "content": "  ", "special": False, "normalized": True}],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": {"type": "ByteLevel"},
        "decoder": {"type": "ByteLevel"},
        "model": {"type": "BPE", "dropout": None, "vocab": vocab, "merges": [a + " " + b for a, b in merges]},
    }
    put("tokenizer_bpe", "tiny.json", json.dumps(tok, ensure_ascii=False))
    tok["model"]["merges"] = [[a, b] for a, b in merges]
    tok["normalizer"] = {"type": "NFC"}
    tok["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [{"type": "ByteLevel", "add_prefix_space": True}]}
    put("tokenizer_bpe", "tiny_nfc_pairs.json", json.dumps(tok, ensure_ascii=True))


# --- trainer state, multiple choice, npy, BED, generation config, weights index ----------


def seeds_small_json():
    put("trainer_state", "state.json", json.dumps({
        "format": 1, "step": 40, "opt_step": 40, "total_steps": 100,
        "sampler_state": " ".join(str((i * 2654435761) % (1 << 64)) for i in range(312)) + " 0",
        "nonfinite_run": 0, "nonfinite_total": 1, "tokens": 20480.0, "wall_seconds": 3.5,
        "best": {"step": 40, "metric": "val_loss", "value": 1.25, "metrics": {"val_loss": 1.25, "val_bpb": None}},
        "last_eval": {"val_loss": 1.25, "val_bpb": None}, "last_eval_step": 40}, indent=2))
    put("trainer_state", "lra_state.json", json.dumps({"step": 3, "opt_step": 3, "sampler_state": "2 17", "best": None}))
    put("mc_jsonl", "items.jsonl",
        '{"context": "The sky is", "choices": ["blue", "green", "loud"], "gold": 0}\n\n'
        '{"context": "2 + 2 =", "choices": [" 4", " 5"], "gold": 1}\n')
    put("bed", "regions.bed", "track name=x\n# comment\nchr1\t0\t100\ttrain\nchr1 100 150 val\r\nchr2\t5\t9\n")
    copy("generation_config", "sharded.json", "libmamba/tests/data/hf_mamba_sharded_bf16/generation_config.json")
    put("generation_config", "sampling.json", json.dumps({
        "do_sample": True, "temperature": 0.7, "top_k": 40, "top_p": 0.9, "max_new_tokens": 20,
        "eos_token_id": [0, 2], "bos_token_id": 0, "pad_token_id": None}))
    copy("weights_index", "index.json", "libmamba/tests/data/hf_mamba_sharded_bf16/model.safetensors.index.json")


def npy(descr, shape, raw, version=1):
    header = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (
        descr, "".join("%d," % s for s in shape) if len(shape) == 1 else ", ".join(str(s) for s in shape))
    lenfmt, pre = ("<H", 10) if version == 1 else ("<I", 12)
    total = pre + len(header) + 1
    header += " " * ((64 - total % 64) % 64) + "\n"
    return b"\x93NUMPY" + bytes([version, 0]) + struct.pack(lenfmt, len(header)) + header.encode() + raw


def seeds_npy():
    put("npy", "f4.npy", npy("<f4", [2, 2], f32(1, 2, 3, 4)))
    put("npy", "i8.npy", npy("<i8", [3], struct.pack("<3q", 1, -2, 3)))
    put("npy", "u1_v2.npy", npy("|u1", [4], b"\x00\x01\x02\x03", version=2))
    put("npy", "f8_scalar.npy", npy("<f8", [], struct.pack("<d", 1.5)))
    put("npy", "i4.npy", npy("<i4", [1, 2], struct.pack("<2i", 5, 6)))


def main():
    if os.path.isdir(OUT) and "--keep" not in sys.argv:
        # Regenerate the generated seeds; crash-* regression inputs stay.
        for h in os.listdir(OUT):
            for f in os.listdir(os.path.join(OUT, h)):
                if not f.startswith("crash-") and not f.startswith("finding-"):
                    os.remove(os.path.join(OUT, h, f))
    seeds_safetensors()
    seeds_model_config()
    seeds_yaml_config()
    seeds_fasta()
    seeds_audio()
    seeds_shard()
    seeds_lra_text()
    seeds_lra_image()
    seeds_png()
    seeds_tokenizer_bpe()
    seeds_small_json()
    seeds_npy()
    for h in sorted(os.listdir(OUT)):
        files = os.listdir(os.path.join(OUT, h))
        size = sum(os.path.getsize(os.path.join(OUT, h, f)) for f in files)
        print("%-18s %3d seeds %7d bytes" % (h, len(files), size))


if __name__ == "__main__":
    main()
