#!/usr/bin/env bash
# The README's first command: installs what Phoenix needs, builds it, and runs its main job on
# the bundled example estate: validate, plan and render.
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
