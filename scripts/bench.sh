#!/usr/bin/env bash
# Builds the release preset and runs the end-to-end benchmark on generated estates.
# Arguments are passed to phoenix_bench, e.g. scripts/bench.sh --sizes 10,1000 --runs 3
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh release
exec build/release/bench/phoenix_bench --phoenix build/release/src/phoenix "$@"
