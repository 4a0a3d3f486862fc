#!/usr/bin/env bash
# The README's first command: installs what Phoenix needs, builds it, and runs its main job on
# the bundled example estate: validate, plan and render, then the lab (the whole platform on
# this machine: pve-sim, real LXC guests, two Docker engines, DNS) brought up and converged by
# `phoenix sync all`. Needs root (namespaces, containers). Safe to run again: the lab stays up,
# and a second sync changes nothing; `build/release/src/phoenix lab down` removes it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh release
phoenix=build/release/src/phoenix
estate=examples/estate/etc
echo
echo "== phoenix validate"
"$phoenix" -C "$estate" validate
echo
echo "== phoenix plan"
"$phoenix" -C "$estate" plan
echo
echo "== phoenix render --out out/example"
mkdir -p out
"$phoenix" -C "$estate" render --out out/example
echo
echo "== phoenix lab up"
"$phoenix" lab up
echo
echo "== phoenix lab run sync all"
"$phoenix" lab run sync all
echo
echo "== phoenix lab status"
"$phoenix" lab status
echo
echo "The lab stays up in /var/tmp/phoenix-lab: $phoenix lab run <command> runs Phoenix on it,"
echo "$phoenix lab down removes it."
