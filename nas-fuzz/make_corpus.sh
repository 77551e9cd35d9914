#!/usr/bin/env bash
# Regenerates the seed corpus of the fuzz targets (nas-fuzz/corpus/<target>/) from the
# real files: slices of the data in DATA (default: data, the repository's copy; the
# shared data directory ../shared/data holds the same files), a run directory of a short
# real search (NB201, evolution, 12 trials, scored by the table), and a tiny plugin
# library built with the C compiler. Inputs that once crashed a target (crash-*) are
# kept. Run from anywhere: `nas-fuzz/make_corpus.sh [DATA]`.
set -euo pipefail
cd "$(dirname "$0")/.."
data="${1:-data}"
work="target/fuzz-corpus-work"
rm -rf "$work"
mkdir -p "$work"

# A short real search; its run directory gives the journal, state and architecture seeds.
cargo build --release -q -p nas-cli --bin nas -p nas-strategy-evolution
target/release/nas search --space nb201 --strategy evolution --budget 12 --seed 0 \
  --table "$data/nasbench201/nb201_cifar10.csv" --out "$work/run" >/dev/null
# The run records its directory as an absolute path: keep the corpus free of this machine's.
sed -i "s|$PWD/||g" "$work/run/config.json"

# The smallest library the host's check accepts: the ABI version and the table entry
# points, nothing else (no C library, one load segment each for code and data).
cat > "$work/plugin.c" <<'C'
unsigned nas_plugin_abi_version(void) { return 1; }
const void *nas_plugin_table(void) { return 0; }
C
cc -shared -fPIC -Os -nostdlib -Wl,-z,noseparate-code -Wl,--build-id=none \
  -o "$work/libnas_strategy_tiny.so" "$work/plugin.c"
strip "$work/libnas_strategy_tiny.so"

find nas-fuzz/corpus -type f ! -name 'crash-*' -delete 2>/dev/null || true
cargo run --release -q -p nas-fuzz --example make_corpus -- \
  nas-fuzz/corpus "$data" "$work/run" "$work/libnas_strategy_tiny.so"
rm -rf "$work"
du -sh nas-fuzz/corpus
for d in nas-fuzz/corpus/*/; do
  echo "$(basename "$d"): $(ls "$d" | wc -l) seeds, $(du -sb "$d" | cut -f1) bytes"
done
