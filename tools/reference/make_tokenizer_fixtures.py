#!/usr/bin/env python3
"""Reference fixtures for mambakit's byte-level BPE tokenizer, from HF tokenizers.

Trains a small GPT-2-style byte-level BPE (vocabulary 1000, ByteLevel
pre-tokenizer with the GPT-2 regex, special tokens <|endoftext|> and
<|padding|>, one non-special added token of four spaces as GPT-NeoX has)
on the first 400 KB of the King James Bible, saves its tokenizer.json, and
records HF's token ids for a list of awkward strings. The C++ tests
(datasets/tests/test_tokenizer.cpp) must produce the same ids.

For each string it also records the ids of the same tokenizer with an NFC
normalizer (GPT-NeoX's tokenizer.json has one) and whether NFC changes the
string, so the tests can check mambakit's NFC handling without a second file.

Never needed by the build or CI; see README.md beside this file.

    python tools/reference/make_tokenizer_fixtures.py [--out datasets/tests/data/bpe_tiny]
    python tools/reference/make_tokenizer_fixtures.py --check-trained DIR --mambakit BIN
        (loads DIR/tokenizer.json, written by `mambakit tokenizer train --model bpe`,
         with HF tokenizers and compares its ids with `mambakit tokenize DIR`)
"""
import argparse
import json
import os
import subprocess
import sys
import unicodedata

from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS_BYTES = 400_000
VOCAB_SIZE = 1000
SPECIALS = ["<|endoftext|>", "<|padding|>"]
SPACE_RUN = "    "  # a non-special added token, matched before BPE like NeoX's space runs

AWKWARD = [
    "",
    "hello",
    "Hello world",
    "In the beginning God created the heaven and the earth.",
    " leading space",
    "trailing space ",
    "  two leading spaces",
    "multiple   spaces   between    words",
    "only spaces:      ",
    "   ",
    " ",
    "tabs\tand\t\ttabs",
    "new\nlines\n\n\nmany",
    "\n",
    "crlf\r\nline\r\n",
    " \t \n mixed whitespace \n\t",
    "don't",
    "I'LL DON'T",
    "we're they've I'm she'd he'll it's",
    "'s alone",
    "x''y ''",
    "quote 'single' and \"double\"",
    "digits 1234567890 and 3.14159, 1,000,000",
    "\u0663\u0664\u0665 Arabic-Indic digits",
    "\u216b Roman numeral twelve, \u00bd one half, \u00b2 squared",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00c5ngstr\u00f6m",
    "cafe\u0301 (decomposed accent)",
    "\u0301 lone combining accent",
    "\u2126 ohm sign, \u212b angstrom sign",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8",
    "\u4e2d\u6587 \u6df7\u5408 English",
    "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
    "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e",
    "emoji \U0001F600\U0001F44D\U0001F3FD",
    "family \U0001F468\u200D\U0001F469\u200D\U0001F467\u200D\U0001F466 ZWJ",
    "flag \U0001F1FA\U0001F1F3 and \u2764\ufe0f",
    "NUL\x00byte",
    "\x00",
    "control \x01\x07\x1b[0m chars",
    "a" * 2000,
    "supercalifragilisticexpialidocious" * 40,
    "x" + "0123456789" * 100,
    "<|endoftext|>",
    "before<|endoftext|>after",
    " <|endoftext|> spaced ",
    "<|endoftext|><|endoftext|>",
    "<|endoftext|><|padding|>text",
    "<|endoftext",
    "<|endoftext|",
    "four    spaces and eight        spaces",
    "no\u00a0break\u00a0space",
    "ideographic\u3000space",
    "line\u2028separator\u2029paragraph",
    "next\u0085line",
    "zero\u200bwidth",
    "\ufeffbyte order mark",
    "int main() { return 0; } // C++\n\tif (x != y) x += 2;",
    "https://example.com/path?query=1&b=2#frag",
    "ABC123def456",
    "mixed CASE, punctuation!!! ...?",
    "And God said, Let there be light: and there was light.\n\n",
    # probes of the regex's classes: what \\s, \\p{L} and \\p{N} contain
    "a \u00a0b x\u3000\u3000y \u2028\u2028z \x85\x85n \u1680\u1680o \u202f\u202fp \u205f\u205fq",
    "\x0b\x0b\x0c\x0cv \x1c\x1c\x1d\x1ew \u200b\u200bz \u180e\u180ex \u2060\u2060y",
    "\u01c5a \u02b0b \u00aac \u3005d \u2160\u2161e 5\u00bcf \u2460g _h \u0903i \u0301\u0301j",
    "12ab34 ab12 1.5 \uff11\uff12 \U0001D7CE\U0001D7CF \U00010140",
]


def corpus_text() -> str:
    path = os.path.join(ROOT, "data", "kjv.txt")
    with open(path, "rb") as f:
        return f.read(CORPUS_BYTES).decode("utf-8", errors="ignore")


def train() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([corpus_text()], trainer=trainer)
    tok.add_tokens([AddedToken(SPACE_RUN, normalized=True, special=False)])
    return tok


def with_nfc(tok: Tokenizer) -> Tokenizer:
    nfc = Tokenizer.from_str(tok.to_str())
    nfc.normalizer = normalizers.NFC()
    return nfc


def with_byte_level(tok: Tokenizer, **options) -> Tokenizer:
    variant = Tokenizer.from_str(tok.to_str())
    variant.pre_tokenizer = pre_tokenizers.ByteLevel(**options)
    return variant


def cases(tok: Tokenizer) -> list:
    nfc = with_nfc(tok)
    prefixed = with_byte_level(tok, add_prefix_space=True, use_regex=True)
    no_regex = with_byte_level(tok, add_prefix_space=False, use_regex=False)
    out = []
    for s in AWKWARD:
        ids = tok.encode(s, add_special_tokens=False).ids
        assert tok.decode(ids, skip_special_tokens=False) == s, f"HF does not round-trip {s!r}"
        pretokens = [p for p, _ in tok.pre_tokenizer.pre_tokenize_str(s)]
        out.append({
            "text": s,
            "pretokens": pretokens,
            "ids": ids,
            "nfc_changes": not unicodedata.is_normalized("NFC", s),
            "nfc_ids": nfc.encode(s, add_special_tokens=False).ids,
            "prefix_space_ids": prefixed.encode(s, add_special_tokens=False).ids,
            "no_regex_ids": no_regex.encode(s, add_special_tokens=False).ids,
        })
    return out


def compact_json(fixture: dict) -> str:
    """One case per line: small enough to commit, still readable in a diff."""
    head = {k: v for k, v in fixture.items() if k != "cases"}
    lines = [json.dumps(c, ensure_ascii=True, separators=(",", ":")) for c in fixture["cases"]]
    return json.dumps(head, indent=1)[:-2] + ',\n "cases": [\n  ' + ",\n  ".join(lines) + "\n ]\n}\n"


def make(out_dir: str) -> None:
    import tokenizers
    tok = train()
    os.makedirs(out_dir, exist_ok=True)
    tok.save(os.path.join(out_dir, "tokenizer.json"))
    # The GPT-NeoX convention: <|endoftext|> is both bos and eos.
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"}, f, indent=2)
        f.write("\n")
    fixture = {
        "tokenizers_version": tokenizers.__version__,
        "unicode_version": unicodedata.unidata_version,
        "vocab_size": tok.get_vocab_size(with_added_tokens=True),
        "special_ids": {t: tok.token_to_id(t) for t in SPECIALS + [SPACE_RUN]},
        "cases": cases(tok),
    }
    with open(os.path.join(out_dir, "expected.json"), "w") as f:
        f.write(compact_json(fixture))
    n = len(fixture["cases"])
    print(f"wrote {out_dir}: vocab {fixture['vocab_size']}, {n} strings (tokenizers {tokenizers.__version__})")


def check_trained(tok_dir: str, mambakit: str) -> int:
    """Compares HF's ids for a tokenizer.json written by mambakit's trainer with mambakit's own."""
    tok = Tokenizer.from_file(os.path.join(tok_dir, "tokenizer.json"))
    bad = 0
    for s in AWKWARD:
        if "\x00" in s or s == "":
            continue  # not passable as a command-line argument
        hf = tok.encode(s, add_special_tokens=False).ids
        res = subprocess.run([mambakit, "tokenize", tok_dir, "--text", s, "--json"],
                             capture_output=True, check=True, text=True)
        ours = json.loads(res.stdout)["ids"]
        if hf != ours:
            bad += 1
            print(f"differs: {s[:40]!r}\n  HF   {hf[:20]}\n  ours {ours[:20]}")
    total = sum(1 for s in AWKWARD if s and "\x00" not in s)
    print(f"{total - bad}/{total} strings give identical ids")
    return 1 if bad else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(ROOT, "datasets", "tests", "data", "bpe_tiny"))
    ap.add_argument("--check-trained", metavar="DIR", help="compare a mambakit-trained tokenizer.json with HF")
    ap.add_argument("--mambakit", default=os.path.join(ROOT, "build", "experiments", "mambakit"))
    args = ap.parse_args()
    if args.check_trained:
        return check_trained(args.check_trained, args.mambakit)
    make(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
