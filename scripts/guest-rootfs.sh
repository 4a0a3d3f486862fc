#!/usr/bin/env bash
# Builds the root filesystem of the lab's LXC guests (DESIGN.md §5): Debian 12 (bookworm) made by
# debootstrap, never pulled from a registry, with systemd as PID 1. tools/lab/lxc_guest.py
# starts real LXC system containers on copies of it. Everything goes to a cache outside the
# repository:
#   ${PHOENIX_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/phoenix}/guest-rootfs-<tag>/rootfs
# The guests have no route to the package mirror, so the build also runs `apt-get update` in the
# root filesystem and downloads (without installing) the packages the tests install in the guests
# and every dependency: a later `apt-get install` of them inside a guest works offline from
# /var/cache/apt/archives. The tag names the suite and a hash of this recipe, so changing a package
# list builds a new cache beside the old one.
# Idempotent: when the cache is there, nothing is built (and apt is only consulted when lxc or
# debootstrap is missing on the host). Prints the root filesystem's path on its last line;
# progress goes to stderr:
#   rootfs="$(scripts/guest-rootfs.sh)" && tools/lab/lxc_guest.py selftest "$rootfs"
# Needs root (debootstrap, chroot, mount namespaces).
set -euo pipefail

suite=bookworm
mirror=http://deb.debian.org/debian
# Bump when the steps below change in a way the lists do not show.
recipe=2
# Installed by debootstrap (on top of --variant=minbase). systemd-sysv makes /sbin/init systemd.
include=(systemd systemd-sysv dbus iproute2 procps ca-certificates openssl python3)
# Downloaded with their dependencies, for offline installation inside the guests.
download=(curl jq nginx-light docker.io)
host_packages=(lxc debootstrap util-linux)

cache="${PHOENIX_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/phoenix}"
recipe_sum="$(printf '%s\n' "$suite" "$mirror" "$recipe" "${include[*]}" "${download[*]}" |
  sha256sum | cut -c1-10)"
tag="$suite-$recipe_sum"
dir="$cache/guest-rootfs-$tag"

missing=()
for p in "${host_packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "guest-rootfs: installing ${missing[*]}" >&2
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -q >&2
  "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi

# The directory only ever appears complete: it is renamed into place at the end of a build.
if [ -d "$dir/rootfs" ]; then
  echo "$dir/rootfs"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "guest-rootfs: building the guest root filesystem needs root (debootstrap, chroot)" >&2
  exit 1
fi

mkdir -p "$cache"
# One build at a time: two test runs may call this together.
exec 9>"$cache/guest-rootfs-$tag.lock"
flock 9
if [ -d "$dir/rootfs" ]; then # built by the run we waited for
  echo "$dir/rootfs"
  exit 0
fi

# Builds that were interrupted left their directories (we hold the lock: nobody else is building).
# Nothing is mounted in them: every mount of a build lives in its own mount namespace (below).
for old in "$cache/guest-rootfs-$tag.build."*; do
  [ -e "$old" ] || continue
  echo "guest-rootfs: removing the unfinished build $old" >&2
  rm -rf --one-file-system "$old"
done

build="$cache/guest-rootfs-$tag.build.$$"
root="$build/rootfs"
trap 'rm -rf --one-file-system "$build"' EXIT
mkdir -p "$build"

start=$(date +%s)
echo "guest-rootfs: debootstrap $suite into $root (a few minutes the first time)" >&2
debootstrap --variant=minbase --include="$(IFS=,; echo "${include[*]}")" \
  "$suite" "$root" "$mirror" >&2

# apt's settings for the guests: keep every downloaded package (apt-get does by default, the `apt`
# command does not), and no Recommends, so that what is installed offline is exactly what was
# downloaded here (with --no-install-recommends) whichever way it is asked for.
cat >"$root/etc/apt/apt.conf.d/90phoenix-offline" <<'EOF'
// Written by Phoenix's scripts/guest-rootfs.sh: the guests install from the archives downloaded
// when the root filesystem was built; they have no route to the mirror.
APT::Keep-Downloaded-Packages "true";
Binary::apt::APT::Keep-Downloaded-Packages "true";
APT::Install-Recommends "false";
APT::Install-Suggests "false";
EOF
# Hooks that empty the archives after every install (docker-clean in Docker's Debian images) would
# throw the offline packages away: there must be none.
cleaners="$(grep -rlsE 'Post-Invoke.*(archives|\.bin)|Dir::Cache::(src)?pkgcache' \
  "$root/etc/apt/apt.conf.d" || true)"
if [ -n "$cleaners" ]; then
  echo "guest-rootfs: removing apt hooks that clean the package cache: $cleaners" >&2
  rm -f $cleaners
fi

# apt-get runs chrooted in a mount namespace of its own: /proc, /dev and the host's resolv.conf
# are mounted there, and vanish with the namespace whatever happens (no unmounting to forget).
touch "$root/etc/resolv.conf"
echo "guest-rootfs: downloading ${download[*]} and their dependencies" >&2
unshare --mount --propagation private -- /bin/sh -eu -c '
  root="$1"; shift
  mount -t proc proc "$root/proc"
  mount --rbind /dev "$root/dev"
  mount --bind /etc/resolv.conf "$root/etc/resolv.conf"
  export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 PATH=/usr/sbin:/usr/bin:/sbin:/bin
  # Only what is downloaded below stays in the archives (debootstrap leaves its own packages there).
  chroot "$root" apt-get clean
  chroot "$root" apt-get update -q
  chroot "$root" apt-get install -q -y --download-only --no-install-recommends "$@"
  # Proves the archives are complete: the same request with downloading forbidden must succeed.
  chroot "$root" apt-get install -q -y --download-only --no-download --no-install-recommends "$@"
' sh "$root" "${download[@]}" >&2

kept=$(find "$root/var/cache/apt/archives" -maxdepth 1 -name '*.deb' | wc -l)
if [ "$kept" -eq 0 ]; then
  echo "guest-rootfs: no .deb file was kept in /var/cache/apt/archives" >&2
  exit 1
fi
# Nothing host-specific in the shared tree: each guest writes its own machine-id, hostname and
# /etc/hosts line (tools/lab/lxc_guest.py). The guests have no DNS (no network at all).
: >"$root/etc/resolv.conf"
chmod 644 "$root/etc/resolv.conf"
echo "localhost" >"$root/etc/hostname"
printf '%s\n' "127.0.0.1	localhost" "::1		localhost ip6-localhost ip6-loopback" \
  "ff02::1		ip6-allnodes" "ff02::2		ip6-allrouters" >"$root/etc/hosts"
# Quiet, deterministic guests: no periodic apt runs (they would try the mirror), no fstrim or
# e2scrub of block devices (a privileged container sees the host's).
quiet_units=(apt-daily.timer apt-daily-upgrade.timer fstrim.timer e2scrub_all.timer
  e2scrub_reap.service)
for unit in "${quiet_units[@]}"; do
  rm -f "$root/etc/systemd/system/"*.wants/"$unit"
  ln -sfn /dev/null "$root/etc/systemd/system/$unit"
done
rm -rf "$root/var/cache/apt/archives/partial/"* "$root/var/lib/apt/lists/partial/"*
echo "$tag" >"$build/tag"

mv -T "$build" "$dir"
trap - EXIT
echo "guest-rootfs: built $dir/rootfs in $(($(date +%s) - start)) s" \
  "($kept packages kept for offline installs)" >&2
echo "$dir/rootfs"
