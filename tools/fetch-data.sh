#!/usr/bin/env bash
# Extracts the real corpora that Debian packages carry into data/ (idempotent).
#   data/kjv.txt  the King James Bible, Genesis 1:1 to Revelation 22:21
#                 (packages bible-kjv, bible-kjv-text; public domain, 4.3 MB)
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p data
if [ ! -s data/kjv.txt ]; then
  command -v bible >/dev/null || { echo "fetch-data: 'bible' missing; run tools/install-deps.sh" >&2; exit 1; }
  bible 'gen1:1-rev22:21' > data/kjv.txt.tmp
  mv data/kjv.txt.tmp data/kjv.txt
  echo "fetch-data: wrote data/kjv.txt ($(wc -c < data/kjv.txt) bytes)"
fi

# DNA (issue 5): links to the genomes Debian's example packages ship, under the
# names the experiments use (nothing is copied; mambakit makes its indexed
# BGZF copies in ~/.cache/mambakit on first use).
#   data/dna/ecoli536.fna.gz   E. coli 536, NC_008253, 4.94 Mb (bowtie-examples)
#   data/dna/species/<name>/   the reference genomes of 4 species, 16 strains
#                              (ragout-examples: E.Coli 2, H.Pylori 5, S.Aureus 5, V.Cholerae 4)
ECOLI=/usr/share/doc/bowtie/examples/genomes/NC_008253.fna.gz
RAGOUT=/usr/share/doc/ragout/examples
mkdir -p data/dna/species
if [ -s "$ECOLI" ]; then
  ln -sfn "$ECOLI" data/dna/ecoli536.fna.gz
else
  echo "fetch-data: $ECOLI missing (package bowtie-examples; run tools/install-deps.sh); skipping E. coli" >&2
fi
if [ -d "$RAGOUT" ]; then
  for sp in E.Coli H.Pylori S.Aureus V.Cholerae; do
    [ -d "$RAGOUT/$sp/references" ] && ln -sfn "$RAGOUT/$sp/references" "data/dna/species/$sp"
  done
  echo "fetch-data: data/dna ready ($(ls data/dna/species | wc -l) species folders)"
else
  echo "fetch-data: $RAGOUT missing (package ragout-examples; run tools/install-deps.sh); skipping species genomes" >&2
fi

# Piano audio (issue 5): data/piano/{train,val,test}/*.wav, rendered from MIDI
# in Debian packages by tools/make-piano-corpus.sh; only when its tools are
# installed (fluidsynth, fluid-soundfont-gm, midicsv, sox).
if command -v fluidsynth >/dev/null && command -v midicsv >/dev/null && command -v sox >/dev/null &&
   [ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ]; then
  bash tools/make-piano-corpus.sh
else
  echo "fetch-data: the piano corpus needs fluidsynth, fluid-soundfont-gm, midicsv and sox (tools/install-deps.sh); skipping data/piano" >&2
fi
