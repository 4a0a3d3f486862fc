#!/usr/bin/env bash
# The README's second command, and what CI runs: installs what the tests need, builds the ci
# preset (warnings as errors, sanitizers) and runs every test through CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/docker-env.sh
# The real step-ca the certificate tests run against, built once into a cache outside the
# repository (scripts/build-step-ca.sh).
PHOENIX_STEP_CA="$(scripts/build-step-ca.sh)"
export PHOENIX_STEP_CA
# The real Traefik the routing test sends requests through (scripts/build-traefik.sh), cached
# the same way.
PHOENIX_TRAEFIK="$(scripts/build-traefik.sh)"
export PHOENIX_TRAEFIK
# The root filesystem of the real Debian containers the guest-feature tests run in (debootstrap,
# cached; installs lxc and debootstrap when missing).
PHOENIX_GUEST_ROOTFS="$(scripts/guest-rootfs.sh)"
export PHOENIX_GUEST_ROOTFS
scripts/build.sh ci
# The estate cache of every phoenix the tests run: in the build directory, not ~/.cache (the
# CTest tests set it themselves too).
export PHOENIX_CACHE_DIR="${PHOENIX_CACHE_DIR:-$PWD/build/ci/estate-cache}"
ctest --preset ci "$@"
