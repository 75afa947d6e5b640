#!/usr/bin/env bash
# Builds the piano audio corpus data/piano/{train,val,test}/*.wav (16 kHz,
# mono, 16-bit) from real piano MIDI pieces that Debian packages ship, so the
# audio experiments (SaShiMi / Mamba's YouTubeMix task at small scale) run
# offline and reproducibly.
#
#   1. The packages holding the MIDI files are downloaded with
#      `apt-get download` and unpacked with `dpkg-deb -x` into a cache
#      folder; nothing is installed.
#   2. Each piece goes through midicsv/csvmidi: every program change becomes
#      program 0 (Acoustic Grand Piano), bank selects and SysEx (which could
#      switch banks or drum parts) are dropped, and so is channel 10, the GM
#      percussion channel, which no program change turns into a piano.
#   3. fluidsynth renders it with FluidR3_GM.sf2 at 44.1 kHz stereo.
#   4. sox averages the two channels, resamples to 16 kHz (high quality),
#      trims leading/trailing silence and normalises the peak to -1 dBFS
#      (-R: repeatable dither, so the corpus is the same bytes every run).
#   5. Pieces are split by piece, fixed in the PIECES table below, so no
#      piece is in two splits.
# data/piano/MANIFEST.tsv lists every piece with its package version, MIDI
# checksum, split and duration. The corpus is built in a temporary folder
# and moved into place at the end, so an interrupted run leaves no half
# corpus. Needs: apt-get, dpkg-deb, midicsv, fluidsynth, fluid-soundfont-gm,
# sox (tools/install-deps.sh installs them).
#
# Usage: tools/make-piano-corpus.sh [--force] [OUT_DIR]   (default data/piano)
# Env:   PIANO_CACHE  where .debs are downloaded/unpacked (default data/.cache/piano)
set -euo pipefail
cd "$(dirname "$0")/.."

force=0
if [ "${1:-}" = "--force" ]; then force=1; shift; fi
OUT=${1:-data/piano}
CACHE=${PIANO_CACHE:-data/.cache/piano}
SF2=/usr/share/sounds/sf2/FluidR3_GM.sf2
RATE=16000

# split  name                  package        path inside the package
PIECES="
train  maple-leaf-rag         python3-pyo    usr/lib/python3/dist-packages/pyo/examples/snds/mapleleafrag.mid
train  jazz                   playmidi       usr/share/doc/playmidi/examples/jazz.mid.gz
train  gm-striving            playmidi       usr/share/doc/playmidi/examples/gmstriving.mid.gz
train  what-a-friend          faust-common   usr/share/faust/examples/physicalModeling/faust-stk/pd-patches/fancy/what-a-friend/what_a_friend.mid
val    pachelbel-canon        faust-common   usr/share/faust/examples/physicalModeling/faust-stk/pd-patches/fancy/canon/pachelbel.mid
train  take-five              faust-common   usr/share/faust/examples/physicalModeling/faust-stk/pd-patches/fancy/take5/take5.mid
train  daisy                  faust-common   usr/share/faust/examples/physicalModeling/faust-stk/pd-patches/fancy/daisy/daisy.mid
train  nyquist-piano-demo     nyquist        usr/share/nyquist/lib/piano/demo.mid
train  start-with-middle-c    pianobooster   usr/share/doc/pianobooster/courses/BeginnerCourse/01-StartWithMiddleC.mid
train  chord-of-c-major       pianobooster   usr/share/doc/pianobooster/courses/BeginnerCourse/02-ChordOfCMajor.mid
train  up-and-down            pianobooster   usr/share/doc/pianobooster/courses/BeginnerCourse/03-UpAndDown.mid
train  chord-of-f-major       pianobooster   usr/share/doc/pianobooster/courses/BeginnerCourse/05-ChordOfFMajor.mid
train  down-and-up            pianobooster   usr/share/doc/pianobooster/courses/BeginnerCourse/06-DownAndUp.mid
train  clair-de-lune          pianobooster   usr/share/doc/pianobooster/courses/BoosterMusic/01-ClairDeLaLune.mid
train  lavenders-blue         pianobooster   usr/share/doc/pianobooster/courses/BoosterMusic/02-LavendersBlue.mid
train  skip-to-my-loo         pianobooster   usr/share/doc/pianobooster/courses/BoosterMusic/03-SkipToMyLoo.mid.gz
train  greensleeves           pianobooster   usr/share/doc/pianobooster/courses/BoosterMusic/06-Greensleeves.mid.gz
val    turkish-march          faust-common   usr/share/faust/examples/physicalModeling/faust-stk/pd-patches/fancy/turkish-march/turkish-march.mid
val    frere-jacques          pianobooster   usr/share/doc/pianobooster/courses/BoosterMusic/04-FrereJacques.mid
test   bach-invention-1       playmidi       usr/share/doc/playmidi/examples/bach-invention-01.mid.gz
test   scarborough-fair       pianobooster   usr/share/doc/pianobooster/courses/BoosterMusic/05-ScarboroughFair.mid.gz
test   amazing-grace          pianobooster   usr/share/doc/pianobooster/courses/BoosterMusic/07-AmazingGrace.mid.gz
"

die() { echo "make-piano-corpus: $*" >&2; exit 1; }

if [ -s "$OUT/MANIFEST.tsv" ] && [ $force -eq 0 ]; then
  echo "make-piano-corpus: $OUT already built ($(tail -n +2 "$OUT/MANIFEST.tsv" | wc -l) pieces); --force rebuilds"
  exit 0
fi
for tool in apt-get dpkg-deb midicsv csvmidi fluidsynth sox soxi; do
  command -v "$tool" >/dev/null || die "'$tool' missing; run tools/install-deps.sh"
done
[ -f "$SF2" ] || die "$SF2 missing; install fluid-soundfont-gm (tools/install-deps.sh)"

# --- 1. fetch and unpack the packages that hold the MIDI files -----------------
mkdir -p "$CACHE/debs" "$CACHE/root"
packages=$(echo "$PIECES" | awk 'NF {print $3}' | sort -u)
declare -A version
for pkg in $packages; do
  deb=$(ls "$CACHE/debs/${pkg}"_*.deb 2>/dev/null | head -n 1 || true)
  if [ -z "$deb" ]; then
    echo "make-piano-corpus: downloading $pkg"
    (cd "$CACHE/debs" && apt-get download -q "$pkg" >/dev/null) ||
      die "apt-get download $pkg failed (try 'apt-get update')"
    deb=$(ls "$CACHE/debs/${pkg}"_*.deb | head -n 1)
  fi
  version[$pkg]=$(dpkg-deb -f "$deb" Version)
  stamp="$CACHE/root/.${pkg}_${version[$pkg]}"
  if [ ! -e "$stamp" ]; then
    dpkg-deb -x "$deb" "$CACHE/root"
    touch "$stamp"
  fi
done

# --- 2-4. render every piece ----------------------------------------------------
mkdir -p "$(dirname "$OUT")"
WORK=$(mktemp -d "${OUT%/}.tmp.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/train" "$WORK/val" "$WORK/test" "$WORK/.render"
printf 'split\tname\tpackage\tversion\tpath\tmidi_md5\tseconds\n' > "$WORK/MANIFEST.tsv"

force_piano() {  # in.mid out.mid: every part on the Acoustic Grand Piano
  midicsv "$1" | awk -F', *' -v OFS=', ' '
    $3 == "System_exclusive" || $3 == "System_exclusive_packet" { next }
    $3 ~ /_c$/ && $4 == 9 { next }                        # GM percussion channel
    $3 == "Control_c" && ($5 == 0 || $5 == 32) { next }  # bank select
    $3 == "Program_c" { $5 = 0 }
    { print }' | csvmidi > "$2"
}

echo "$PIECES" | awk 'NF' | while read -r split name pkg path; do
  src="$CACHE/root/$path"
  [ -f "$src" ] || die "$pkg ${version[$pkg]} has no $path"
  r="$WORK/.render/$name"
  if [[ "$src" == *.gz ]]; then gzip -dc "$src" > "$r.orig.mid"; else cp "$src" "$r.orig.mid"; fi
  md5=$(md5sum < "$r.orig.mid" | cut -c1-32)
  force_piano "$r.orig.mid" "$r.piano.mid" || die "$name: midicsv/csvmidi failed on $path"
  fluidsynth -n -i -q -g 0.6 -r 44100 -T wav -O s16 -F "$r.44k.wav" "$SF2" "$r.piano.mid" >/dev/null 2>&1 ||
    die "$name: fluidsynth failed"
  sox -R -V1 "$r.44k.wav" -b 16 "$WORK/$split/$name.wav" \
    remix 1v0.5,2v0.5 rate -v $RATE \
    silence 1 0.01 -60d reverse silence 1 0.01 -60d reverse norm -1
  secs=$(soxi -D "$WORK/$split/$name.wav")
  [ "$(soxi -r "$WORK/$split/$name.wav")" = $RATE ] && [ "$(soxi -c "$WORK/$split/$name.wav")" = 1 ] ||
    die "$name: output is not $RATE Hz mono"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%.2f\n' "$split" "$name" "$pkg" "${version[$pkg]}" "$path" "$md5" "$secs" >> "$WORK/MANIFEST.tsv"
  printf 'make-piano-corpus: %-5s %-22s %7.1f s\n' "$split" "$name" "$secs"
done
rm -rf "$WORK/.render"

# --- 5. move into place and report ---------------------------------------------
rm -rf "$OUT"
mv "$WORK" "$OUT"
trap - EXIT
awk -F'\t' 'NR > 1 { t[$1] += $7; n[$1]++; all += $7 }
  END { for (s in t) printf "make-piano-corpus: %-5s %2d pieces %7.1f s\n", s, n[s], t[s];
        printf "make-piano-corpus: total %.1f s (%.1f min) of 16 kHz mono piano in %s\n", all, all / 60, out }' \
  out="$OUT" "$OUT/MANIFEST.tsv"
