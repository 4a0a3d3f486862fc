#!/usr/bin/env bash
# Runs the real `dnsmasq --test` on a rendered records file.
set -euo pipefail
records=$1
dnsmasq_bin=$(command -v dnsmasq || echo /usr/sbin/dnsmasq)
[ -x "$dnsmasq_bin" ] || { echo "dnsmasq is not installed (scripts/install-deps.sh installs it)" >&2; exit 1; }
grep -q '^address=/' "$records" || { echo "$records has no address= records" >&2; exit 1; }
"$dnsmasq_bin" --test --conf-file="$records"
