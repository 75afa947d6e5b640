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
