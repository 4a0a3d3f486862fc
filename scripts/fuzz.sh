#!/usr/bin/env bash
# Builds Phoenix's libFuzzer targets with clang 16 in build/fuzz and fuzzes the configuration
# loaders. Usage: scripts/fuzz.sh [seconds-per-target] [target...]
#   seconds-per-target  default 200
#   target              fuzz_json, fuzz_yaml, fuzz_estate (default: all three, run in parallel)
# Crashes, timeouts and OOMs land in fuzz/findings/<target>/ (gitignored) with a log per run;
# turn each one into a file in tests/fuzz_regressions/ (see tests/fuzz_regression_test.cc).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
duration="${1:-200}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_json fuzz_yaml fuzz_estate)

"$root/scripts/install-deps.sh" --fuzz

build="$root/build/fuzz"
CC=clang-16 CXX=clang++-16 cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang-16 -DCMAKE_CXX_COMPILER=clang++-16 \
  -DPHOENIX_FUZZ=ON -DPHOENIX_BUILD_TESTS=OFF
cmake --build "$build" --target "${targets[@]}"

# ---- seed corpora ------------------------------------------------------------------------------
corpus="$build/corpus"
mkdir -p "$corpus/fuzz_json" "$corpus/fuzz_yaml" "$corpus/fuzz_estate"
seed_dirs=("$root/examples")
[ -d "$root/tests/corpus" ] && seed_dirs+=("$root/tests/corpus")
[ -d "$root/tests/fuzz_regressions" ] && seed_dirs+=("$root/tests/fuzz_regressions")
while IFS= read -r -d '' f; do
  case "$f" in
    */fuzz_regressions/fuzz_json-*) cp "$f" "$corpus/fuzz_json/" ;;
    */fuzz_regressions/fuzz_yaml-*) cp "$f" "$corpus/fuzz_yaml/" ;;
    */fuzz_regressions/fuzz_estate-*) cp "$f" "$corpus/fuzz_estate/" ;;
    *.json) cp "$f" "$corpus/fuzz_json/$(echo "$f" | md5sum | cut -c1-16).json" ;;
    *.yml | *.yaml) cp "$f" "$corpus/fuzz_yaml/$(echo "$f" | md5sum | cut -c1-16).yml" ;;
  esac
done < <(find "${seed_dirs[@]}" -type f -print0)

# fuzz_estate inputs: the five files of a one-stack estate separated by "\n%%%%\n" lines, in the
# order of fuzz/estate_input.h. One seed per stack of every estate found.
sep=$'\n%%%%\n'
while IFS= read -r -d '' etc; do
  estate="$(dirname "$etc")"
  for stack in "$estate"/stacks/*/; do
    [ -d "$stack" ] || continue
    compose="$stack/docker-compose.yml"
    [ -f "$compose" ] || compose="$stack/docker-compose.yaml"
    out="$corpus/fuzz_estate/$(echo "$stack" | md5sum | cut -c1-16)"
    {
      for part in "$etc/phoenix_hypervisor_config.json" "$etc/phoenix_lxc_configs.json" \
                  "$etc/phoenix_vm_configs.json"; do
        cat "$part" 2>/dev/null || true
        printf '%s' "$sep"
      done
      cat "$compose" 2>/dev/null || true
      printf '%s' "$sep"
      cat "$stack/phoenix.json" 2>/dev/null || true
    } > "$out"
  done
done < <(find "${seed_dirs[@]}" -type d -name etc -print0)

# ---- fuzz ----------------------------------------------------------------------------------------
findings="$root/fuzz/findings"
run_target() {
  local t="$1" deadline=$((SECONDS + duration)) n=0
  mkdir -p "$findings/$t"
  # libFuzzer stops at the first crash; restart it on the grown corpus until the time is up.
  while [ $SECONDS -lt "$deadline" ] && [ $n -lt 50 ]; do
    n=$((n + 1))
    "$build/fuzz/$t" "$corpus/$t" -max_total_time=$((deadline - SECONDS)) -max_len=8192 \
      -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$findings/$t/" >"$findings/$t/run-$n.log" 2>&1 || true
  done
  local execs
  execs=$(grep -h 'stat::number_of_executed_units' "$findings/$t"/run-*.log |
          awk '{s += $2} END {print s + 0}')
  echo "fuzz.sh: $t: ${duration}s, $execs executions, $n run(s), findings:" \
       "$(find "$findings/$t" -type f ! -name '*.log' | wc -l)"
}
for t in "${targets[@]}"; do run_target "$t" & done
wait
echo "fuzz.sh: findings in $findings"
