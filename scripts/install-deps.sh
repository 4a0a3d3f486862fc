#!/usr/bin/env bash
# Installs every Debian package Phoenix needs to build, test and benchmark. Idempotent: packages
# already present are left alone, and apt is only consulted when something is missing.
# This is the one place where the project's system dependencies are listed.
set -euo pipefail

packages=(
  # toolchain
  g++ cmake ninja-build pkg-config git
  # libraries (find_package / pkg-config in cmake/Dependencies.cmake)
  nlohmann-json3-dev libyaml-dev libcli11-dev libfmt-dev libssl-dev
  libcurl4-openssl-dev libsqlite3-dev libmimalloc-dev zlib1g-dev
  # the estate cache's content hashes (XXH3-128; src/config/load_cache.cc)
  libxxhash-dev
  libgtest-dev libgmock-dev
  # pve-sim's HTTPS server (tools/pve-sim)
  libcpp-httplib-dev
  # real tools the tests drive
  nginx-light dnsmasq-base openssl
  # dig, the DNS queries of the delivery tests (tests/e2e/deliver_test.py)
  bind9-dnsutils
  python3 python3-jsonschema python3-yaml
  # the ACME server the certificate tests issue from (tests/ca/acme_test.cc)
  pebble
  # the Docker test environment (scripts/docker-env.sh, tests/tools/netns_engine.py): the engine,
  # the test image's root filesystem (no image can be pulled), network namespaces and nsenter
  docker.io busybox-static iproute2 util-linux
)
# Fuzzing (scripts/fuzz.sh) uses clang 16's libFuzzer: clang 14's C++ support cannot compile
# libstdc++'s <expected>. Only installed when asked for, to keep CI's setup short.
if [ "${1:-}" = "--fuzz" ]; then
  packages+=(clang-16 libfuzzer-16-dev libclang-rt-16-dev)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -q
"${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
