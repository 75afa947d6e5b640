#!/usr/bin/env bash
# Builds the offline stand-ins for LRA Text and Retrieval from the Linux man
# pages of Debian's manpages and manpages-dev packages (sections 2, 3, 7),
# in the LRA file formats read by mk::data::lra:
#
#   <out>/text.{train,eval,test}.tsv   label \t text          (read_text_tsv)
#       byte-level classification by section: 0 = section 2 (system calls),
#       1 = section 3 (library functions), 2 = section 7 (overviews)
#   <out>/pairs.{train,eval,test}.tsv  label \t id1 \t id2 \t text1 \t text2
#       (read_retrieval, the AAN pairs layout): label 1 for two pages linked
#       by a SEE ALSO reference, 0 for a random unlinked pair, one negative
#       per positive.
#
# Pages are rendered with `man -l FILE | col -b` (fixed width, no
# hyphenation or justification); the header and footer lines, which name the
# section, are dropped, and whitespace runs become one space (a row is one
# line). Retrieval texts also lose their SEE ALSO section, which would give
# the link away. Texts are cut at MAXBYTES bytes (the readers truncate
# further, to 4096 / 4000). Splits and the choice of negatives come from a
# string hash of the page names, so the output is deterministic for a given
# set of pages (the installed package versions).
#
# Usage: tools/make-manpage-lra.sh [OUT_DIR]   (default <repo>/data/lra_man)
# Environment: JOBS (parallel renders, default 2), MAXBYTES (default 16384).
# Takes about a minute on 2 cores.
set -euo pipefail

OUT=${1:-"$(cd "$(dirname "$0")/.." && pwd)/data/lra_man"}
MAXBYTES=${MAXBYTES:-16384}
JOBS=${JOBS:-2}
# C locale: ASCII rendering (byte-level texts without multibyte quotes) and
# byte-wise awk string functions.
export LC_ALL=C MANWIDTH=80

for cmd in man col dpkg-query awk xargs; do
  command -v "$cmd" >/dev/null || { echo "make-manpage-lra: needs $cmd" >&2; exit 1; }
done
for p in manpages manpages-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    { echo "make-manpage-lra: package $p is not installed (tools/install-deps.sh)" >&2; exit 1; }
done

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/pages" "$OUT"

# Pages of sections 2, 3, 7 owned by the two packages. Symlinked names
# (fstat.2 -> stat.2) are aliases: links through them count as links to the
# real page; only real files are rendered.
dpkg -L manpages manpages-dev | grep -E '^/usr/share/man/man[237]/[^/]+\.gz$' | LC_ALL=C sort -u \
  > "$TMP/all"
: > "$TMP/real"
: > "$TMP/alias"
while read -r f; do
  name=$(basename "$f" .gz)
  if [ -L "$f" ]; then
    target=$(readlink -f "$f")
    [ -f "$target" ] && printf '%s\t%s\n' "$name" "$(basename "$target" .gz)" >> "$TMP/alias"
  elif [ -f "$f" ]; then
    printf '%s\n' "$f" >> "$TMP/real"
    printf '%s\t%s\n' "$name" "$name" >> "$TMP/alias"
  fi
done < "$TMP/all"
echo "make-manpage-lra: rendering $(wc -l < "$TMP/real") pages with $JOBS jobs"

export TMP
xargs -P "$JOBS" -I{} sh -c \
  'f="$1"; man --nh --nj -l "$f" 2>/dev/null | col -b > "$TMP/pages/$(basename "$f" .gz)"' _ {} \
  < "$TMP/real"

# One row per page: id, section digit, cleaned text, cleaned text without
# SEE ALSO, the ids (aliases resolved) its SEE ALSO section refers to.
# Files are passed in sorted order of their names.
(cd "$TMP/pages" && LC_ALL=C ls) | sed "s|^|$TMP/pages/|" > "$TMP/rendered"
xargs awk -v maxbytes="$MAXBYTES" -v aliasfile="$TMP/alias" '
function flush(   n, i, first, last, full, noref, inref, line) {
  if (id == "") return
  first = 0; last = 0
  for (i = 1; i <= nl; ++i) if (L[i] ~ /[^ \t]/) { if (!first) first = i; last = i }
  full = ""; noref = ""; inref = 0
  for (i = first + 1; i < last; ++i) {
    line = L[i]
    if (line ~ /^[A-Z][A-Z0-9 ,\/()-]*$/) inref = (line ~ /^SEE ALSO/)
    full = full " " line
    if (!inref) noref = noref " " line
    else refs = refs " " line
  }
  printf "%s\t%s\t%s\t%s\t%s\n", id, substr(id_sec, 1, 1), clean(full), clean(noref), links(refs)
}
function clean(s) {
  gsub(/[ \t\r\f\v]+/, " ", s); sub(/^ /, "", s); sub(/ $/, "", s)
  return substr(s, 1, maxbytes)
}
function links(s,   out, seen, m, key) {
  out = ""
  while (match(s, /[A-Za-z0-9_.:+-]+\([237][a-z]*\)/)) {
    m = substr(s, RSTART, RLENGTH); s = substr(s, RSTART + RLENGTH)
    sub(/\(/, ".", m); sub(/\)$/, "", m)
    if (m in A) { key = A[m]; if (key != id && !(key in seen)) { seen[key] = 1; out = out (out == "" ? "" : ",") key } }
  }
  return out
}
BEGIN {
  FS = "\n"
  while ((getline line < aliasfile) > 0) { split(line, f, "\t"); A[f[1]] = f[2] }
}
FNR == 1 {
  flush()
  id = FILENAME; sub(/.*\//, "", id)
  id_sec = id; sub(/^.*\./, "", id_sec)  # "open.2" -> "2", "size_t.3type" -> "3type"
  nl = 0; refs = ""
}
{ L[++nl] = $0 }
END { flush() }
' < "$TMP/rendered" > "$TMP/table"

# Splits (hash mod 10: 0 test, 1 eval, else train) and pairs.
awk -F'\t' -v out="$OUT" '
function h(s,   i, x) {  # polynomial string hash mod 2^31 - 1: portable across awks
  x = 7
  for (i = 1; i <= length(s); ++i) x = (x * 131 + ORD[substr(s, i, 1)]) % 2147483647
  return x
}
function split_of(s,   r) { r = h(s) % 10; return r == 0 ? "test" : r == 1 ? "eval" : "train" }
function label_of(sec) { return sec == "2" ? 0 : sec == "3" ? 1 : 2 }
function row(kind, part, key, text) {  # rows are ordered later by their hash key
  printf "%010d\t%s\n", h(key), text > (out "/." kind "." part ".unsorted")
}
BEGIN { for (i = 1; i < 256; ++i) ORD[sprintf("%c", i)] = i }
{
  id[NR] = $1; sec[$1] = $2; full[$1] = $3; noref[$1] = $4; nlinks = split($5, lk, ",")
  for (i = 1; i <= nlinks; ++i) link[$1, lk[i]] = 1
  linklist[$1] = $5
  n = NR
}
END {
  for (i = 1; i <= n; ++i) {
    p = id[i]
    if (full[p] == "") continue
    row("text", split_of(p), p, label_of(sec[p]) "\t" full[p])
  }
  # Positives: unordered linked pairs, each once (a < b).
  np = 0
  for (i = 1; i <= n; ++i) {
    a = id[i]; m = split(linklist[a], lk, ",")
    for (j = 1; j <= m; ++j) {
      b = lk[j]
      if (!(b in sec) || noref[a] == "" || noref[b] == "") continue
      x = a < b ? a : b; y = a < b ? b : a
      if ((x, y) in done) continue
      done[x, y] = 1; PA[++np] = x; PB[np] = y
    }
  }
  for (k = 1; k <= np; ++k) {
    x = PA[k]; y = PB[k]; s = split_of(x " " y)
    row("pairs", s, x " " y, "1\t" x "\t" y "\t" noref[x] "\t" noref[y])
    # One negative: a page c not linked to x either way, from the hash.
    for (t = h(y " " x) % n; ; t = (t + 1) % n) {
      c = id[t + 1]
      if (c != x && c != y && noref[c] != "" && !((x, c) in link) && !((c, x) in link)) break
    }
    row("pairs", s, x " " c " -", "0\t" x "\t" c "\t" noref[x] "\t" noref[c])
  }
  printf "make-manpage-lra: %d pages, %d linked pairs\n", n, np > "/dev/stderr"
}
' "$TMP/table"

for kind in text pairs; do
  for s in train eval test; do
    f="$OUT/.$kind.$s.unsorted"
    [ -f "$f" ] || : > "$f"
    LC_ALL=C sort -t "$(printf '\t')" -k1,1 -s "$f" | cut -f2- > "$OUT/$kind.$s.tsv"
    rm -f "$f"
  done
done
for f in "$OUT"/text.*.tsv "$OUT"/pairs.*.tsv; do
  printf 'make-manpage-lra: %-28s %6d rows\n' "$f" "$(wc -l < "$f")"
done
