#!/usr/bin/env bash
# Fuzzes the nas parsers and loaders with AFL++ (through cargo-afl, on the stable
# toolchain): each target of nas-fuzz in turn, from its seed corpus, for SECONDS each.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET (default 600)] [TARGET...]   (default: every target)
#
# Findings go to target/fuzz/<target>/default/{crashes,hangs}/. A run is limited to
# 2 GiB of memory (-m 2048: an allocation past it is a crash) and a second per input
# (five for `config`; NAS_FUZZ_TIMEOUT_MS sets it: an input that takes longer is a hang). At the end one line
# per target sums up its fuzzer_stats; the script exits non-zero when any target saved a
# crash or a hang. Replay a finding with `target/afl/release/<target> < FILE`.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-600}"
shift || true
all=(idx cifar space_file arch config nb201_csv journal safetensors plugin)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
for t in "${targets[@]}"; do
  [[ " ${all[*]} " == *" $t "* ]] || { echo "unknown target \`$t\` (targets: ${all[*]})" >&2; exit 2; }
done

# cargo-afl and its AFL++ runtime, where missing.
if ! cargo afl --version >/dev/null 2>&1; then
  cargo install cargo-afl --locked
fi
if ! built=$(cargo afl config --build 2>&1); then
  grep -q "already built" <<<"$built" || { echo "$built" >&2; exit 1; }
fi

export CARGO_TARGET_DIR="$PWD/target/afl"
cargo afl build --release --manifest-path nas-fuzz/afl/Cargo.toml

# A non-interactive run: no status screen, no CPU-governor or core-dump checks, no CPU
# binding. One worker thread and few malloc arenas keep the address space, which -m
# limits, to what the target itself allocates.
export AFL_SKIP_CPUFREQ=1 AFL_NO_UI=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
export AFL_NO_AFFINITY=1 AFL_FORKSRV_INIT_TMOUT=20000
export RAYON_NUM_THREADS=1 MALLOC_ARENA_MAX=2
# A hang is an input that runs past a second; five for `config`, whose one-shot
# strategies run their default schedules (ENAS: 300 controller steps), which AFL++'s
# instrumented build with debug assertions takes about a second over.
timeout_of() { [ "$1" = config ] && echo "${NAS_FUZZ_TIMEOUT_MS:-5000}" || echo "${NAS_FUZZ_TIMEOUT_MS:-1000}"; }

# The targets write the files they load into a scratch directory under TMPDIR.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

for t in "${targets[@]}"; do
  out="target/fuzz/$t"
  rm -rf "$out"
  mkdir -p "$out"
  echo "fuzzing $t for ${seconds}s (log: $out/afl.log)"
  TMPDIR="$scratch" cargo afl fuzz -i "nas-fuzz/corpus/$t" -o "$out" -m 2048 \
    -t "$(timeout_of "$t")" -V "$seconds" -- "$CARGO_TARGET_DIR/release/$t" >"$out/afl.log" 2>&1 \
    || { echo "afl-fuzz failed on $t:" >&2; tail -30 "$out/afl.log" >&2; exit 1; }
  rm -rf "${scratch:?}"/*
done

status=0
for t in "${targets[@]}"; do
  stats="target/fuzz/$t/default/fuzzer_stats"
  field() { awk -F' *: *' -v k="$1" '$1 == k { print $2 }' "$stats"; }
  crashes=$(field saved_crashes)
  hangs=$(field saved_hangs)
  printf '%-12s execs_done %-9s run_time %-5s corpus_count %-5s saved_crashes %-3s saved_hangs %s\n' \
    "$t" "$(field execs_done)" "$(field run_time)" "$(field corpus_count)" "$crashes" "$hangs"
  if [ "$crashes" != 0 ] || [ "$hangs" != 0 ]; then
    status=1
  fi
done
[ $status = 0 ] || echo "findings under target/fuzz/<target>/default/{crashes,hangs}/" >&2
exit $status
