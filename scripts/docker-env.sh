#!/usr/bin/env bash
# Makes the Docker environment the tests drive, idempotently: Debian's engine answering on
# /var/run/docker.sock, a swarm on it with this engine as a manager, its traefik-public overlay
# network, and the local test image
# phoenix-test/busybox:1 (no registry can be reached, so it is built from Debian's busybox-static).
# Quiet on success but for one summary line; changes nothing when everything is already there.
# Never leaves or re-initialises an existing swarm.
set -euo pipefail
cd "$(dirname "$0")/.."

readonly socket=/var/run/docker.sock
readonly image=phoenix-test/busybox:1
readonly dockerd_log=/var/log/phoenix-dockerd.log
readonly start_deadline_s=${PHOENIX_DOCKERD_START_DEADLINE:-90}
# What the image offers: the applets tests run inside containers and services.
readonly applets=(sh sleep httpd wget nc cat echo ls true false
                  env hostname id mkdir rm grep ps kill)

die() {
  echo "docker-env: error: $*" >&2
  exit 1
}

sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)

# Serialises concurrent runs (a developer's shell and a test run): starting dockerd, initialising
# the swarm and importing the image must each happen once.
lock=/run/lock/phoenix-docker-env.lock
[ -w "${lock%/*}" ] || lock=${TMPDIR:-/tmp}/phoenix-docker-env.lock
exec 9>"$lock"
flock -w 300 9 || die "another scripts/docker-env.sh has held $lock for 5 minutes"

# Packages: listed in scripts/install-deps.sh, the one place; only run when one is missing.
for p in docker.io busybox-static iproute2 util-linux; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    scripts/install-deps.sh >&2 || die "scripts/install-deps.sh failed to install $p"
    break
  fi
done

dk() { docker -H "unix://$socket" "$@"; }
engine_answers() { timeout 10 docker -H "unix://$socket" version >/dev/null 2>&1; }
pid1_is_systemd() { [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; }

# The engine. Under systemd its unit starts it; elsewhere (containers, CI sandboxes) dockerd is
# started detached, logging to $dockerd_log. A dockerd that is already starting is waited for.
notes=()
if ! engine_answers; then
  dockerd_pid=""
  if pid1_is_systemd && systemctl cat docker.service >/dev/null 2>&1; then
    "${sudo_cmd[@]}" systemctl start docker.service ||
      die "systemctl start docker failed; see: journalctl -u docker.service"
    where="journalctl -u docker.service"
  elif running=$(cat /var/run/docker.pid 2>/dev/null) && [ -n "$running" ] &&
       [ "$(cat "/proc/$running/comm" 2>/dev/null)" = dockerd ]; then
    dockerd_pid=$running
    where="the log of dockerd (pid $dockerd_pid)"
  else
    command -v dockerd >/dev/null || die "dockerd not found (Debian package docker.io)"
    # 9>&-: dockerd must not hold this script's lock for its whole life.
    "${sudo_cmd[@]}" setsid nohup dockerd </dev/null >>"$dockerd_log" 2>&1 9>&- &
    dockerd_pid=$!
    where=$dockerd_log
  fi
  deadline=$((SECONDS + start_deadline_s))
  until engine_answers; do
    if [ -n "$dockerd_pid" ] && [ ! -d "/proc/$dockerd_pid" ]; then
      tail -n 20 "$dockerd_log" >&2 2>/dev/null || true
      die "dockerd exited before answering on $socket; see $where"
    fi
    [ "$SECONDS" -lt "$deadline" ] ||
      die "no Docker engine answered on $socket within ${start_deadline_s}s; see $where"
    sleep 0.2
  done
  notes+=("started dockerd")
fi
version=$(dk version --format '{{.Server.Version}} {{.Server.APIVersion}}') ||
  die "cannot read the engine's version on $socket"
read -r engine_version api_version <<<"$version"
engine_version=${engine_version%%+*}

# The swarm. Only an inactive engine is initialised; any other state is reported, never changed.
swarm_state() {
  dk info --format '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}} {{.Swarm.NodeID}}'
}
# The IPv4 address of the interface that carries the default route, else loopback.
advertise_addr() {
  local dev addr=""
  dev=$(ip -4 route show default |
        awk '!found { for (i = 1; i < NF; i++) if ($i == "dev") { print $(i + 1); found = 1 } }')
  if [ -n "$dev" ]; then
    addr=$(ip -4 -o addr show dev "$dev" scope global |
           awk 'NR == 1 { split($4, a, "/"); print a[1] }')
  fi
  echo "${addr:-127.0.0.1}"
}
swarm=$(swarm_state) || die "cannot read the swarm state on $socket"
read -r state is_manager node_id <<<"$swarm"
if [ "$state" = inactive ]; then
  addr=$(advertise_addr)
  out=$(dk swarm init --advertise-addr "$addr" 2>&1) ||
    die "docker swarm init --advertise-addr $addr failed: $out"
  swarm=$(swarm_state) || die "cannot read the swarm state on $socket"
  read -r state is_manager node_id <<<"$swarm"
  notes+=("initialised swarm on $addr")
fi
case "$state/$is_manager" in
  active/true) ;;
  active/*) die "this engine is a swarm worker; the tests need a manager. Left unchanged:" \
                "promote it from a manager (docker node promote) or leave that swarm by hand" ;;
  locked/*) die "the swarm is locked; unlock it by hand (docker swarm unlock)" ;;
  *) die "the swarm is '$state'; left unchanged. See: docker info" ;;
esac

# The test image, built only when missing: a root filesystem of busybox-static and its applets,
# imported as a single layer (no Dockerfile, no builder, no base image to pull).
if ! dk image inspect "$image" >/dev/null 2>&1; then
  busybox=/bin/busybox
  [ -x "$busybox" ] || die "$busybox not found (Debian package busybox-static)"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  root=$work/rootfs
  mkdir -p "$root"/{bin,etc,root,tmp,proc,sys,dev}
  chmod 1777 "$root/tmp"
  cp "$busybox" "$root/bin/busybox"
  have=$("$busybox" --list)
  for a in "${applets[@]}"; do
    grep -qx "$a" <<<"$have" || die "$busybox has no '$a' applet"
    ln -s busybox "$root/bin/$a"
  done
  printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' \
    'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >"$root/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' >"$root/etc/group"
  tar --sort=name --numeric-owner --owner=0 --group=0 --mtime=@0 \
    -C "$root" -cf "$work/rootfs.tar" .
  out=$(dk import --change 'CMD ["/bin/sh"]' --change 'LABEL org.phoenix.test=1' \
    "$work/rootfs.tar" "$image" 2>&1) || die "docker import of $image failed: $out"
  notes+=("built $image")
fi

# traefik-public: the attachable overlay network every routed stack joins. `phoenix swarm init`
# creates it on a real manager; here it is part of the shared environment, so that tests, which
# only create uniquely named resources, can deploy stacks that use it.
if ! dk network inspect traefik-public >/dev/null 2>&1; then
  out=$(dk network create --driver overlay --attachable --label com.phoenix.managed=true \
    traefik-public 2>&1) || die "cannot create the traefik-public network: $out"
  notes+=("created network traefik-public")
fi

summary="docker-env: engine $engine_version (API $api_version),"
summary+=" swarm active (manager, node $node_id), image $image ready"
if [ ${#notes[@]} -gt 0 ]; then
  printf -v joined '%s; ' "${notes[@]}"
  summary+=" (${joined%; })"
fi
echo "$summary"
