#!/usr/bin/env bash
# Formats every C++ source with the pinned .clang-format (clang-format 14, Debian 12).
# With --check, lists the files that differ and exits 1 instead of rewriting them.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v clang-format-14 >/dev/null; then
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q clang-format-14
fi
mapfile -t files < <(git ls-files '*.cc' '*.h')
if [ "${1:-}" = "--check" ]; then
  status=0
  for f in "${files[@]}"; do
    if ! clang-format-14 --style=file "$f" | cmp -s - "$f"; then echo "$f"; status=1; fi
  done
  exit $status
fi
clang-format-14 --style=file -i "${files[@]}"
