#!/usr/bin/env bash
# Builds data/english/corpus.txt, 12.6 MB of real English text from Debian
# packages, for the byte-level scaling sweep (experiments/scaling_text.yaml).
#
# Sources, and why these:
#   - The King James Bible (package bible-kjv-text, public domain; 4.3 MB):
#     data/kjv.txt, which tools/fetch-data.sh writes with `bible`. Debian
#     packages no Project Gutenberg texts (`apt-cache search gutenberg`
#     finds none), and the KJV is the largest public-domain literary text it
#     ships.
#   - Perl's documentation (package perl-doc, the GPL/Artistic pod manuals
#     of perl 5.36: perlintro, perlsyn, perlfunc, perlfaq1-9, perlre, the
#     perldelta history, ...; 206 files, 8.3 MB as text): the largest body
#     of English prose documentation in Debian main that needs nothing but
#     perl to render (pod2text). Its .deb is fetched with `apt-get download`
#     and unpacked with `dpkg-deb -x` into a cache folder, as
#     tools/make-piano-corpus.sh does: nothing is installed (installing
#     perl-doc would also move the system's perl to perl-doc's exact version).
# About a third Early Modern English prose, two thirds modern technical
# English with some code. Larger English sources in Debian are dictionaries
# (dict-gcide: 40 MB of entries and markup), not running text.
#
# The held-out split. The language task cuts data.split contiguously
# (scaling_text.yaml: [0.95, 0.05]), so that the last 5% is not the end of
# one book, every text is cut into pieces of about 32 KB at blank lines and
# the pieces are concatenated in a fixed pseudo-random order (by the MD5 of
# "source:piece number"): the held-out part is a mix of both sources, and no
# byte of it is trained on.
#
# data/english/MANIFEST.tsv lists every source file with its package
# version, bytes and SHA-256. Idempotent: does nothing when the corpus is
# there (--force rebuilds). Built in a temporary folder, moved into place at
# the end. Needs apt-get, dpkg-deb, perl with pod2text, and data/kjv.txt
# (tools/fetch-data.sh; tools/install-deps.sh installs bible-kjv).
#
# Usage: tools/make-english-corpus.sh [--force] [OUT_DIR]   (default data/english)
# Env:   ENGLISH_CACHE  where the .deb is downloaded/unpacked (default data/.cache/english)
set -euo pipefail
cd "$(dirname "$0")/.."

force=0
if [ "${1:-}" = "--force" ]; then force=1; shift; fi
OUT=${1:-data/english}
CACHE=${ENGLISH_CACHE:-data/.cache/english}
KJV=data/kjv.txt
PKG=perl-doc

die() { echo "make-english-corpus: $*" >&2; exit 1; }

if [ -s "$OUT/corpus.txt" ] && [ -s "$OUT/MANIFEST.tsv" ] && [ $force -eq 0 ]; then
  echo "make-english-corpus: $OUT already built ($(wc -c < "$OUT/corpus.txt") bytes); --force rebuilds"
  exit 0
fi
for tool in apt-get dpkg-deb perl pod2text sha256sum; do
  command -v "$tool" >/dev/null || die "'$tool' missing; run tools/install-deps.sh"
done
[ -s "$KJV" ] || die "$KJV missing; run tools/fetch-data.sh first (make data does)"

# --- 1. perl-doc's pod files -----------------------------------------------------
mkdir -p "$CACHE/debs"
deb=$(ls "$CACHE/debs/${PKG}"_*.deb 2>/dev/null | head -n 1 || true)
if [ -z "$deb" ]; then
  echo "make-english-corpus: downloading $PKG"
  (cd "$CACHE/debs" && apt-get download "$PKG" >/dev/null) || die "apt-get download $PKG failed (no network or no apt sources?)"
  deb=$(ls "$CACHE/debs/${PKG}"_*.deb | head -n 1)
fi
version=$(dpkg-deb -f "$deb" Version)
root="$CACHE/root-$version"
if [ ! -d "$root" ]; then
  dpkg-deb -x "$deb" "$root.tmp"
  mv "$root.tmp" "$root"
fi
mapfile -t pods < <(find "$root/usr/share/perl" -name '*.pod' | LC_ALL=C sort)
[ ${#pods[@]} -gt 100 ] || die "$deb: expected the perl manuals (*.pod), found ${#pods[@]}"

# --- 2. render, cut into pieces, shuffle, write ------------------------------------
tmp="$OUT.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp/text"
trap 'rm -rf "$tmp"' EXIT
printf 'source\tpackage\tversion\tbytes\tsha256\n' > "$tmp/MANIFEST.tsv"
kjv_version=$(dpkg-query -W -f='${Version}' bible-kjv-text 2>/dev/null || echo unknown)
cp "$KJV" "$tmp/text/kjv.txt"
printf 'kjv.txt\tbible-kjv-text\t%s\t%s\t%s\n' "$kjv_version" "$(wc -c < "$KJV")" \
  "$(sha256sum < "$KJV" | cut -d' ' -f1)" >> "$tmp/MANIFEST.tsv"
for pod in "${pods[@]}"; do
  name=perl-$(basename "$pod" .pod).txt
  # -i 0: no indentation of ordinary text (code blocks keep theirs); UTF-8 out
  pod2text -i 0 --utf8 "$pod" > "$tmp/text/$name" 2>/dev/null || die "pod2text failed on $pod"
  printf '%s\t%s\t%s\t%s\t%s\n' "${pod#"$root"/}" "$PKG" "$version" "$(wc -c < "$pod")" \
    "$(sha256sum < "$pod" | cut -d' ' -f1)" >> "$tmp/MANIFEST.tsv"
done

# Pieces of about 32 KB ending at a blank line, in MD5 order of "file:n".
perl -MDigest::MD5=md5_hex -e '
  my ($dir, $out) = @ARGV;
  opendir(my $dh, $dir) or die "$dir: $!";
  my @files = sort grep { /\.txt$/ } readdir($dh);
  my %piece;
  for my $f (@files) {
    open(my $in, "<:raw", "$dir/$f") or die "$f: $!";
    local $/ = "";                      # paragraph mode: blank-line separated
    my ($n, $buf) = (0, "");
    while (my $para = <$in>) {
      $buf .= $para;
      if (length($buf) >= 32768) { $piece{"$f:" . $n++} = $buf; $buf = ""; }
    }
    $piece{"$f:" . $n++} = $buf if length $buf;
  }
  open(my $o, ">:raw", $out) or die "$out: $!";
  for my $k (sort { md5_hex($a) cmp md5_hex($b) } keys %piece) {
    my $t = $piece{$k};
    $t =~ s/\n*\z/\n\n/;
    print $o $t;
  }
  close($o) or die "$out: $!";
' "$tmp/text" "$tmp/corpus.txt"
rm -rf "$tmp/text"

bytes=$(wc -c < "$tmp/corpus.txt")
[ "$bytes" -ge 10000000 ] || die "the corpus has $bytes bytes, fewer than 10 MB"
rm -rf "$OUT"
mv "$tmp" "$OUT"
trap - EXIT
echo "make-english-corpus: wrote $OUT/corpus.txt ($bytes bytes: the KJV and $((${#pods[@]})) perl manuals from $PKG $version)"
