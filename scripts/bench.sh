#!/usr/bin/env bash
# Builds the release preset and runs the end-to-end benchmark on generated estates.
# Arguments are passed to phoenix_bench, e.g. scripts/bench.sh --sizes 10,1000 --runs 3
# With --swarm first, runs bench/swarm_bench.py instead (sync stack against docker stack deploy
# on the local engine), e.g. scripts/bench.sh --swarm --sizes 1,10,50 --runs 3
set -euo pipefail
cd "$(dirname "$0")/.."
swarm=false
if [ "${1:-}" = --swarm ]; then
  swarm=true
  shift
fi
scripts/build.sh release
if $swarm; then
  exec /usr/bin/python3 bench/swarm_bench.py --phoenix build/release/src/phoenix "$@"
fi
exec build/release/bench/phoenix_bench --phoenix build/release/src/phoenix "$@"
