#!/usr/bin/env bash
# Builds the release preset and runs the end-to-end benchmark on generated estates.
# Arguments are passed to phoenix_bench, e.g. scripts/bench.sh --sizes 10,1000 --runs 3
# With --swarm first, runs bench/swarm_bench.py instead (sync stack against docker stack deploy
# on the local engine), e.g. scripts/bench.sh --swarm --sizes 1,10,50 --runs 3
# With --pve first, runs bench/pve_bench.py (phoenix create of independent LXCs on pve-sim with
# latency and slow tasks, serially and with -j), e.g. scripts/bench.sh --pve --guests 50 --jobs 1,8
# With --lab first, runs bench/lab_bench.py (sync all on a lab of its own: from nothing, no-op,
# a changed label to a route that answers; needs root), e.g. scripts/bench.sh --lab [--estate DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
mode=core
case "${1:-}" in
  --swarm) mode=swarm; shift ;;
  --pve) mode=pve; shift ;;
  --lab) mode=lab; shift ;;
esac
scripts/build.sh release
if [ "$mode" = swarm ]; then
  exec /usr/bin/python3 bench/swarm_bench.py --phoenix build/release/src/phoenix "$@"
fi
if [ "$mode" = lab ]; then
  # The lab builds or finds its tools itself (scripts/guest-rootfs.sh, build-step-ca.sh,
  # build-traefik.sh, cached).
  exec /usr/bin/python3 bench/lab_bench.py --phoenix build/release/src/phoenix "$@"
fi
if [ "$mode" = pve ]; then
  exec /usr/bin/python3 bench/pve_bench.py --phoenix build/release/src/phoenix \
    --pve-sim build/release/tools/pve-sim/pve-sim "$@"
fi
exec build/release/bench/phoenix_bench --phoenix build/release/src/phoenix "$@"
