#!/usr/bin/env bash
# Builds the real Traefik v3 that the gateway tests route through. `go install` refuses the
# module (its go.mod has replace directives), so the module is downloaded through Go's module
# proxy, copied where it can be written, and built there without cgo. Everything goes to a cache
# outside the repository:
#   ${PHOENIX_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/phoenix}/traefik-<version>/bin/traefik
# Idempotent: when the binary is there, nothing is built (several minutes the first time).
# Prints the binary's path on its last line. The tests find it through PHOENIX_TRAEFIK:
#   PHOENIX_TRAEFIK="$(scripts/build-traefik.sh)" ctest ...
set -euo pipefail

version=v3.6.12
cache="${PHOENIX_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/phoenix}"
top="$cache/traefik-$version"
bin="$top/bin"

if [ -x "$bin/traefik" ]; then
  echo "$bin/traefik"
  exit 0
fi

export PATH="$PATH:/usr/local/go/bin"
if ! command -v go >/dev/null; then
  echo "build-traefik: Go is not installed; Traefik $version needs Go >= 1.25 (https://go.dev/dl)" >&2
  exit 1
fi

mkdir -p "$top"
exec 9>"$top.lock"
flock 9
if [ -x "$bin/traefik" ]; then  # built by whoever held the lock
  echo "$bin/traefik"
  exit 0
fi

export GOCACHE="$cache/go/cache" GOMODCACHE="$cache/go/mod" GOFLAGS=-mod=mod CGO_ENABLED=0
start=$(date +%s)
echo "build-traefik: building Traefik $version (several minutes the first time)" >&2
dir="$(go mod download -json "github.com/traefik/traefik/v3@$version" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')"
src="$top/src"
rm -rf "$src"
cp -r "$dir" "$src"
chmod -R u+w "$src"
mkdir -p "$bin"
(cd "$src" && go build -trimpath -ldflags "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$version" \
  -o "$bin/traefik.tmp" ./cmd/traefik >&2)
mv "$bin/traefik.tmp" "$bin/traefik"
rm -rf "$src"
echo "build-traefik: done in $(($(date +%s) - start)) s" >&2
echo "$bin/traefik"
