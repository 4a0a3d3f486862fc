#!/usr/bin/env bash
# Builds the real step-ca (github.com/smallstep/certificates) that the step-ca tests run against,
# Smallstep's step CLI (github.com/smallstep/cli), which the step_ca and step_cli recipes install
# in guests, and tests/ca/stepca-init, which initialises a CA with step-ca's own pki package as
# `step ca init` does (so no `step` CLI is needed). Go (>= 1.25) fetches the modules through its
# module proxy. Everything goes to a cache outside the repository:
#   ${PHOENIX_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/phoenix}/step-ca-<version>/bin/{step-ca,step,stepca-init}
# Idempotent: when the binaries are there (and stepca-init's sources are unchanged), nothing is
# built. Prints step-ca's path on its last line; stepca-init is beside it. The tests find the
# binaries through PHOENIX_STEP_CA, else at that default place:
#   PHOENIX_STEP_CA="$(scripts/build-step-ca.sh)" ctest ...
set -euo pipefail

version=v0.30.2
cli_version=v0.28.7
repo="$(cd "$(dirname "$0")/.." && pwd)"
cache="${PHOENIX_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/phoenix}"
bin="$cache/step-ca-$version/bin"
init_src="$repo/tests/ca/stepca-init"
init_sum="$(cat "$init_src/main.go" "$init_src/go.mod" "$init_src/go.sum" | sha256sum | cut -d' ' -f1)"

if [ -x "$bin/step-ca" ] && [ -x "$bin/step" ] && [ -x "$bin/stepca-init" ] &&
   [ "$(cat "$bin/stepca-init.sum" 2>/dev/null)" = "$init_sum" ]; then
  echo "$bin/step-ca"
  exit 0
fi

# Go lives in /usr/local/go on these machines, not always on PATH.
export PATH="$PATH:/usr/local/go/bin"
if ! command -v go >/dev/null; then
  echo "build-step-ca: Go is not installed; step-ca $version needs Go >= 1.25 (https://go.dev/dl)" >&2
  exit 1
fi

mkdir -p "$bin"
# One build at a time: two test runs may call this together.
exec 9>"$cache/step-ca-$version.lock"
flock 9

export GOCACHE="$cache/go/cache" GOMODCACHE="$cache/go/mod" GOFLAGS=-mod=mod
# Without cgo: step-ca's YubiKey support would need libpcsclite, which the tests do not use.
export CGO_ENABLED=0
start=$(date +%s)
if [ ! -x "$bin/step-ca" ]; then
  echo "build-step-ca: building step-ca $version (a few minutes the first time)" >&2
  GOBIN="$bin" go install "github.com/smallstep/certificates/cmd/step-ca@$version" >&2
fi
if [ ! -x "$bin/step" ]; then
  echo "build-step-ca: building the step CLI $cli_version" >&2
  GOBIN="$bin" go install "github.com/smallstep/cli/cmd/step@$cli_version" >&2
fi
if [ ! -x "$bin/stepca-init" ] || [ "$(cat "$bin/stepca-init.sum" 2>/dev/null)" != "$init_sum" ]; then
  (cd "$init_src" && go build -trimpath -o "$bin/stepca-init.tmp" . >&2)
  mv "$bin/stepca-init.tmp" "$bin/stepca-init"
  echo "$init_sum" >"$bin/stepca-init.sum"
fi
echo "build-step-ca: done in $(($(date +%s) - start)) s" >&2
echo "$bin/step-ca"
