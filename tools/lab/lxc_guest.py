#!/usr/bin/python3
"""Real Debian 12 system containers for the tests (DESIGN.md §5): Debian's LXC, systemd as PID 1,
the root filesystem a copy of the debootstrap cache that scripts/guest-rootfs.sh builds (nothing is
pulled). Commands run inside with `lxc-attach`, as `pct exec` does on a Proxmox node.

Each guest gets a unique name (phx-PREFIX-RANDOM), a directory of its own under the base directory
(the system's temporary directory unless told) holding a private lxcpath (nothing is created under
/var/lib/lxc), its root filesystem (an overlayfs mount: lower = the cache, never written; upper and
work in the guest's directory; a `cp -a --reflink=auto` copy when overlayfs cannot be mounted),
its logs, and state.json (what to stop). It has no network interface but loopback
(lxc.net.0.type = empty): a test that wants one moves a veth end into the guest's namespace, see
Guest.pid(). Its systemd has finished booting (`running`, or `degraded` with the failed units
in boot_state) when start() returns.

As a module:

    guest = lxc_guest.start(rootfs, "dns")     # Guest; stop() is also registered with atexit
    try:                                       # and SIGTERM/SIGINT/SIGHUP handlers
        done = guest.run(["systemctl", "is-active", "dbus"])    # CompletedProcess, text
        prefix = guest.argv_prefix()           # ["lxc-attach", "-P", ..., "--"]: prepend to argv
        etc = os.path.join(guest.rootfs_path(), "etc")          # the guest's files, on the host
    finally:
        guest.stop()                           # idempotent

    Guest(rootfs, "ci", docker=True) makes a guest that can run Docker's engine and containers
    (every device allowed in its devices cgroup; /var/lib/docker a bind-mounted host directory,
    so the engine's overlay2 driver works).

As a command:

    lxc_guest.py selftest ROOTFS [--base-dir DIR] [--no-docker]
    lxc_guest.py start ROOTFS [--prefix P] [--base-dir DIR] [--docker]   # leaves it running,
                                                                         # prints its state JSON
    lxc_guest.py stop DIR_OR_STATE_JSON
    lxc_guest.py cleanup [--base-dir DIR]   # guests whose owning process has died

Needs root, Debian's lxc (scripts/guest-rootfs.sh installs it) and util-linux; Python standard
library only.
"""
import argparse
import atexit
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time

GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
GUEST_ENV = {"PATH": GUEST_PATH, "HOME": "/root", "LANG": "C.UTF-8",
             "DEBIAN_FRONTEND": "noninteractive"}
LXC_COMMON = "/usr/share/lxc/config/common.conf"
CGROUP_ROOT = "/sys/fs/cgroup"
STATE_MARK = "phoenix-lxc-guest"


class GuestError(Exception):
    """A step of starting, using or stopping a guest failed; the message says which and why."""


# --- small helpers -----------------------------------------------------------------------------

def _run(argv, *, timeout=60, check=True, **kw):
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd="/",
                              stdin=subprocess.DEVNULL, **kw)
    except FileNotFoundError:
        raise GuestError(f"{argv[0]}: not found (install Debian's lxc: scripts/guest-rootfs.sh)") \
            from None
    except subprocess.TimeoutExpired:
        raise GuestError(f"{' '.join(argv)}: no answer within {timeout}s") from None
    if check and done.returncode != 0:
        raise GuestError(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}")
    return done


def _tail(path, lines=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def _start_time(pid):
    """The process's start time (clock ticks after boot), to tell it from a later one of the same
    pid; None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return None if fields[0] in ("Z", "X") else int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def mounts_under(directory):
    """Mount points at or below directory, deepest first."""
    prefix = directory.rstrip("/") + "/"
    found = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
            if point == directory or point.startswith(prefix):
                found.add(point)
    return sorted(found, key=lambda p: (p.count("/"), p), reverse=True)


def _cgroup_dirs(name):
    """The host's cgroup directories LXC made for the container and its monitor."""
    found = []
    with contextlib.suppress(OSError):
        for hierarchy in os.listdir(CGROUP_ROOT):
            for kind in ("payload", "monitor"):
                path = os.path.join(CGROUP_ROOT, hierarchy, f"lxc.{kind}.{name}")
                if os.path.isdir(path):
                    found.append(path)
    if os.path.isdir(os.path.join(CGROUP_ROOT, f"lxc.payload.{name}")):  # pure cgroup v2
        found += [os.path.join(CGROUP_ROOT, f"lxc.{k}.{name}") for k in ("payload", "monitor")]
    return [p for p in found if os.path.isdir(p)]


def _remove_cgroup(path):
    """Removes an empty cgroup directory and its (empty) children, deepest first."""
    for top, dirs, _ in os.walk(path, topdown=False):
        for d in dirs:
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join(top, d))
    with contextlib.suppress(OSError):
        os.rmdir(path)


# --- cleanup at exit and on signals ------------------------------------------------------------

_live = {}  # id -> Guest, the guests this process must stop
_handlers_installed = False


def _stop_all():
    for guest in list(_live.values()):
        with contextlib.suppress(Exception):
            guest.stop()


def _on_signal(signum, frame):
    _stop_all()
    previous = _previous_handlers.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
    elif previous != signal.SIG_IGN:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


_previous_handlers = {}


def _install_handlers():
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    atexit.register(_stop_all)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        previous = signal.getsignal(signum)
        if previous == signal.SIG_IGN:  # ignored by whoever started us: leave it so
            continue
        try:
            signal.signal(signum, _on_signal)
        except ValueError:  # not the main thread: atexit only
            continue
        _previous_handlers[signum] = previous


# --- the guest ---------------------------------------------------------------------------------

class Guest:
    """One LXC system container. `state` holds every name it uses; it is written to
    DIR/state.json before anything is created, so stop() (in this process, in `lxc_guest.py stop`
    or in a later cleanup()) finds everything even after a failed start."""

    def __init__(self, rootfs_cache, name_prefix="phx", *, base_dir=None, docker=False,
                 copy=None, boot_deadline_s=120, stop_deadline_s=60, hostname=None):
        if not re.fullmatch(r"[a-z][a-z0-9]{0,15}", name_prefix):
            raise GuestError(f"prefix '{name_prefix}': use 1 to 16 lower-case letters and digits, "
                             "starting with a letter")
        if copy not in (None, "overlay", "copy"):
            raise GuestError(f"copy '{copy}': use 'overlay', 'copy' or None (overlay if it mounts)")
        self._boot_deadline_s = boot_deadline_s
        self._stop_deadline_s = stop_deadline_s
        self._copy = copy
        self.boot_state = None
        name = f"phx-{name_prefix}-{secrets.token_hex(4)}"
        directory = os.path.join(os.path.abspath(base_dir or tempfile.gettempdir()), name)
        self.state = {
            "mark": STATE_MARK,
            "name": name,
            "dir": directory,
            "lxcpath": os.path.join(directory, "lxc"),
            "rootfs": os.path.join(directory, "rootfs"),
            "cache": os.path.abspath(rootfs_cache),
            "overlay": None,
            "docker": bool(docker),
            "owner_pid": os.getpid(),
            "owner_start": _start_time(os.getpid()),
            "log": os.path.join(directory, "lxc.log"),
            "console_log": os.path.join(directory, "console.log"),
            "hostname": hostname or name,
        }
        self._stopped = False
        self._creator_pid = os.getpid()

    @classmethod
    def from_state(cls, state):
        """A guest to stop, from the state a start() recorded (in this or another process)."""
        if state.get("mark") != STATE_MARK or not state.get("name") or not state.get("dir"):
            raise GuestError("not the state of an lxc_guest.py guest")
        guest = cls.__new__(cls)
        guest._boot_deadline_s = 120
        guest._stop_deadline_s = 60
        guest._copy = None
        guest.boot_state = None
        guest.state = dict(state)
        guest._stopped = False
        guest._creator_pid = None  # stopping it is asked for explicitly
        return guest

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    @property
    def name(self):
        return self.state["name"]

    @property
    def lxcpath(self):
        return self.state["lxcpath"]

    @property
    def dir(self):
        return self.state["dir"]

    def rootfs_path(self):
        """The guest's root filesystem on the host (the overlay's merged view, or the copy)."""
        return self.state["rootfs"]

    def argv_prefix(self, env=None):
        """What to put before an argv to run it in the guest: a clean environment (GUEST_ENV,
        plus env), root, every namespace of the container."""
        prefix = ["lxc-attach", "-P", self.lxcpath, "-n", self.name, "--clear-env"]
        for key, value in {**GUEST_ENV, **(env or {})}.items():
            prefix += ["--set-var", f"{key}={value}"]
        return prefix + ["--"]

    def run(self, argv, input=None, *, timeout=300, check=False, text=True, env=None):
        """Runs argv in the guest; returns the CompletedProcess (stdout and stderr captured). With
        check, a non-zero exit raises GuestError. A command that leaves a process holding its
        stdout (a daemon not started through systemd) makes this wait until the timeout."""
        argv = list(argv)
        try:
            done = subprocess.run(self.argv_prefix(env) + argv, input=input, capture_output=True,
                                  text=text, timeout=timeout, cwd="/",
                                  stdin=subprocess.DEVNULL if input is None else None)
        except subprocess.TimeoutExpired:
            raise GuestError(f"{self.name}: {' '.join(argv)}: no answer within {timeout}s") \
                from None
        if check and done.returncode != 0:
            raise GuestError(f"{self.name}: {' '.join(argv)}: exit {done.returncode}: "
                             f"{(done.stderr or '').strip()}")
        return done

    def lxc_state(self):
        """RUNNING, STOPPED, ... as lxc-info says, or None when LXC does not know the container."""
        done = _run(["lxc-info", "-P", self.lxcpath, "-n", self.name, "-sH"], check=False,
                    timeout=30)
        return done.stdout.strip() or None if done.returncode == 0 else None

    def pid(self):
        """The host pid of the guest's init: its namespaces are /proc/PID/ns/* (a veth end goes
        into the guest with `ip link set DEV netns PID`)."""
        done = _run(["lxc-info", "-P", self.lxcpath, "-n", self.name, "-pH"], timeout=30)
        return int(done.stdout.strip())

    def _save(self):
        path = os.path.join(self.dir, "state.json")
        with open(path + ".tmp", "w") as f:
            json.dump(self.state, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(path + ".tmp", path)

    # -- start --

    def start(self):
        """Makes the root filesystem, starts the container and waits for systemd; on any failure
        undoes what it did and raises. Returns self."""
        if os.geteuid() != 0:
            raise GuestError("needs root: LXC system containers and mounts")
        cache = self.state["cache"]
        if not os.path.exists(os.path.join(cache, "sbin/init")):
            raise GuestError(f"{cache}: not a root filesystem with /sbin/init "
                             "(build it with scripts/guest-rootfs.sh)")
        if shutil.which("lxc-start") is None:
            raise GuestError("lxc-start: not found (scripts/guest-rootfs.sh installs Debian's lxc)")
        os.makedirs(os.path.dirname(self.dir), exist_ok=True)
        os.mkdir(self.dir, 0o700)
        _live[id(self)] = self
        _install_handlers()
        try:
            self._save()
            self._make_rootfs()
            self._personalise()
            self._write_config()
            self._start_container()
            self._wait_booted()
        except BaseException as e:
            try:
                self.stop()
            except GuestError as cleanup:
                raise GuestError(f"{e}; and cleaning up failed: {cleanup}") from e
            raise
        return self

    def _make_rootfs(self):
        cache, rootfs = self.state["cache"], self.rootfs_path()
        os.mkdir(rootfs)
        if self._copy != "copy" and not re.search(r"[,:\\]", cache + self.dir):
            upper, work = os.path.join(self.dir, "upper"), os.path.join(self.dir, "work")
            os.mkdir(upper)
            os.mkdir(work)
            self.state["overlay"] = rootfs
            self._save()
            done = _run(["mount", "-t", "overlay", "overlay", "-o",
                         f"lowerdir={cache},upperdir={upper},workdir={work}", rootfs], check=False)
            if done.returncode == 0:
                return
            self.state["overlay"] = None
            self._save()
            if self._copy == "overlay":
                raise GuestError(f"overlayfs over {cache}: {done.stderr.strip()}")
            os.rmdir(upper)
            shutil.rmtree(work, ignore_errors=True)
        elif self._copy == "overlay":
            raise GuestError(f"overlayfs cannot take {cache} or {self.dir} (',', ':' or '\\')")
        _run(["cp", "-a", "--reflink=auto", cache + "/.", rootfs + "/"], timeout=600)

    def _personalise(self):
        """What must differ from guest to guest: hostname, /etc/hosts, machine-id."""
        etc = os.path.join(self.rootfs_path(), "etc")
        for rel, text, mode in (
                ("hostname", f"{self.state.get('hostname', self.name)}\n", 0o644),
                ("machine-id", secrets.token_hex(16) + "\n", 0o444)):
            path = os.path.join(etc, rel)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # a copy-up of the cache's file, never a write into it
            with open(path, "w") as f:
                f.write(text)
            os.chmod(path, mode)
        hosts = os.path.join(etc, "hosts")
        try:
            with open(hosts) as f:
                lines = f.read()
        except FileNotFoundError:
            lines = "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(hosts)
        with open(hosts, "w") as f:
            f.write(lines + f"127.0.1.1\t{self.state.get('hostname', self.name)}\n")

    def _write_config(self):
        d = self.dir
        lines = [
            "# Written by tools/lab/lxc_guest.py",
            # Debian's defaults for a privileged container, as Proxmox's: capabilities dropped
            # (sys_module, sys_time, sys_rawio, mac_*), the devices cgroup's allow list,
            # proc:mixed sys:mixed cgroup:mixed (the container's own cgroups writable, which
            # systemd needs), the seccomp filter, /dev/pts and 4 ttys.
            f"lxc.include = {LXC_COMMON}",
            f"lxc.uts.name = {self.state.get('hostname', self.name)}",
            f"lxc.rootfs.path = dir:{self.rootfs_path()}",
            "lxc.init.cmd = /sbin/init",
            # Loopback only: tests must not reach beyond loopback and the namespaces they make.
            "lxc.net.0.type = empty",
            # No AppArmor profile to depend on (this kernel has no AppArmor; elsewhere Debian's lxc
            # profiles are only there when apparmor is installed).
            "lxc.apparmor.profile = unconfined",
            # A fresh tmpfs /dev with the standard nodes, as systemd in a container expects.
            "lxc.autodev = 1",
            "lxc.start.auto = 0",
            f"lxc.console.logfile = {self.state['console_log']}",
            f"lxc.log.file = {self.state['log']}",
            "lxc.log.level = WARN",
        ]
        if self.state["docker"]:
            docker_dir = os.path.join(d, "docker")
            os.makedirs(docker_dir, exist_ok=True)
            lines += [
                # runc gives its containers devices (/dev/net/tun, ...) that a child cgroup can
                # only allow when the container's own devices cgroup does.
                "lxc.cgroup.devices.allow = a",
                "lxc.cgroup2.devices.allow = a",
                # overlay2 cannot stack on the overlayfs root: /var/lib/docker on the host's own
                # file system.
                f"lxc.mount.entry = {docker_dir} var/lib/docker none bind,create=dir 0 0",
            ]
        config_dir = os.path.join(self.lxcpath, self.name)
        os.makedirs(config_dir, mode=0o700)
        with open(os.path.join(config_dir, "config"), "w") as f:
            f.write("\n".join(lines) + "\n")

    def _start_container(self):
        # Daemonised: lxc-start returns once the container runs, its monitor stays. Its output
        # goes to a file: a pipe would be held open by the monitor.
        out_path = os.path.join(self.dir, "lxc-start.out")
        with open(out_path, "w") as out:
            try:
                code = subprocess.run(["lxc-start", "-P", self.lxcpath, "-n", self.name],
                                      stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd="/",
                                      timeout=60).returncode
            except subprocess.TimeoutExpired:
                code = "timeout"
        if code != 0:
            raise GuestError(f"lxc-start {self.name}: exit {code}: {_tail(out_path).strip()}\n"
                             f"log:\n{_tail(self.state['log'])}")

    def _wait_booted(self):
        """Waits until `systemctl is-system-running --wait` says running or degraded. Until
        systemd's bus is up, systemctl fails at once (or says "offline"): polled, with a
        deadline."""
        deadline = time.monotonic() + self._boot_deadline_s
        last = ""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise GuestError(f"{self.name}: systemd did not finish booting within "
                                 f"{self._boot_deadline_s}s (last: {last!r})\nconsole:\n"
                                 f"{_tail(self.state['console_log'])}")
            try:
                done = self.run(["systemctl", "is-system-running", "--wait"],
                                timeout=max(1, left))
            except GuestError:
                continue
            state = done.stdout.strip()
            last = state or done.stderr.strip()
            if state in ("running", "degraded"):
                self.boot_state = state
                if state == "degraded":
                    failed = self.run(["systemctl", "--failed", "--no-legend", "--plain"])
                    self.boot_state += ": " + " ".join(
                        line.split()[0] for line in failed.stdout.splitlines() if line.strip())
                return
            # "offline" also comes before systemd, PID 1, has made /run/systemd/system: early
            # in the boot it means "not yet", and the deadline decides.
            if state in ("maintenance", "stopping"):
                raise GuestError(f"{self.name}: systemd is {state}\nconsole:\n"
                                 f"{_tail(self.state['console_log'])}")
            if self.lxc_state() != "RUNNING":
                raise GuestError(f"{self.name}: the container stopped while booting\nlog:\n"
                                 f"{_tail(self.state['log'])}\nconsole:\n"
                                 f"{_tail(self.state['console_log'])}")
            time.sleep(0.1)

    # -- stop --

    def stop(self):
        """Kills the container, unmounts, removes the guest's directory and cgroups. Idempotent;
        does nothing in a forked child of the owner (the guest is the parent's)."""
        if self._stopped:
            return
        if self._creator_pid is not None and self._creator_pid != os.getpid():
            return  # a forked child (multiprocessing, ...): the guest is its parent's
        errors = []
        name, directory = self.name, self.dir
        if os.path.isdir(os.path.join(self.lxcpath, name)):
            if self.lxc_state() not in (None, "STOPPED"):
                done = _run(["lxc-stop", "-P", self.lxcpath, "-n", name, "-k"], check=False,
                            timeout=self._stop_deadline_s)
                if done.returncode != 0 and self.lxc_state() not in (None, "STOPPED"):
                    errors.append(f"lxc-stop: {done.stderr.strip()}")
        # The monitor removes the container's cgroups as it exits: wait for that, then remove
        # what is left (empty directories only).
        deadline = time.monotonic() + 10
        while _cgroup_dirs(name) and time.monotonic() < deadline:
            time.sleep(0.05)
        for path in _cgroup_dirs(name):
            _remove_cgroup(path)
        if os.path.isdir(directory):
            for point in mounts_under(directory):
                done = _run(["umount", point], check=False)
                if done.returncode != 0:
                    time.sleep(0.2)
                    done = _run(["umount", point], check=False)
                if done.returncode != 0:
                    lazy = _run(["umount", "-l", point], check=False)
                    if lazy.returncode != 0:
                        errors.append(f"umount {point}: {done.stderr.strip()}")
            if mounts_under(directory):
                errors.append(f"{directory}: still mounted, not removed")
            else:
                done = _run(["rm", "-rf", "--one-file-system", directory], check=False,
                            timeout=300)
                if done.returncode != 0:
                    errors.append(f"rm {directory}: {done.stderr.strip()}")
        leftover = _cgroup_dirs(name)
        if leftover:
            errors.append(f"cgroups left: {', '.join(leftover)}")
        if errors:
            raise GuestError(f"stopping {name}: " + "; ".join(errors))
        self._stopped = True
        _live.pop(id(self), None)

    def detach(self):
        """Leaves the guest running when this process exits (for `lxc_guest.py start`)."""
        _live.pop(id(self), None)
        self.state["owner_pid"] = None
        self.state["owner_start"] = None
        self._save()


def start(rootfs_cache, name_prefix="phx", **kw):
    """Starts a guest on a copy of rootfs_cache (see Guest); returns it running, systemd booted."""
    return Guest(rootfs_cache, name_prefix, **kw).start()


def load(path):
    """The guest whose directory (or state.json) is path."""
    if os.path.isdir(path):
        path = os.path.join(path, "state.json")
    try:
        with open(path) as f:
            return Guest.from_state(json.load(f))
    except (OSError, ValueError) as e:
        raise GuestError(f"{path}: {e}") from None


def cleanup(base_dir=None):
    """Stops the guests under base_dir whose owning process has died (a test killed before its
    handlers ran). Guests left by `lxc_guest.py start` (no owner) are left alone. Returns their
    names."""
    base = os.path.abspath(base_dir or tempfile.gettempdir())
    stopped = []
    with contextlib.suppress(OSError):
        for entry in sorted(os.listdir(base)):
            state_path = os.path.join(base, entry, "state.json")
            if not entry.startswith("phx-") or not os.path.isfile(state_path):
                continue
            try:
                guest = load(state_path)
            except GuestError:
                continue
            owner = guest.state.get("owner_pid")
            if not owner or _start_time(owner) == guest.state.get("owner_start"):
                continue
            guest.state["owner_pid"] = None
            guest.stop()
            stopped.append(guest.name)
    return stopped


# --- the command -------------------------------------------------------------------------------

class _Clock:
    def __init__(self):
        self.t0 = self.last = time.monotonic()

    def lap(self, what):
        now = time.monotonic()
        print(f"  {now - self.last:6.2f}s  {what}", flush=True)
        self.last = now


def _leftovers(guest):
    found = []
    if os.path.exists(guest.dir):
        found.append(f"directory {guest.dir}")
    found += [f"mount {m}" for m in mounts_under(guest.dir)]
    found += [f"cgroup {c}" for c in _cgroup_dirs(guest.name)]
    with open("/proc/self/mountinfo") as f:
        found += [f"mount {line.split()[4]}" for line in f if guest.name in line]
    if os.path.isdir(guest.lxcpath):
        ls = _run(["lxc-ls", "-P", guest.lxcpath], check=False)
        if ls.stdout.strip():
            found.append(f"lxc-ls: {ls.stdout.strip()}")
    return found


UNIT = """[Unit]
Description=Phoenix lxc_guest.py selftest

[Service]
Type=simple
ExecStart=/bin/sh -c 'echo started >/run/phx-selftest; exec sleep infinity'

[Install]
WantedBy=multi-user.target
"""


def selftest(rootfs, base_dir=None, docker=True):
    clock = _Clock()
    print(f"selftest: guest on {rootfs}", flush=True)
    guest = start(rootfs, "selftest", base_dir=base_dir)
    clock.lap(f"started {guest.name} (overlay: {bool(guest.state['overlay'])}), systemd "
              f"{guest.boot_state}")
    try:
        state = guest.run(["systemctl", "is-system-running"]).stdout.strip()
        if state != "running":
            failed = guest.run(["systemctl", "--failed", "--no-pager"]).stdout
            raise GuestError(f"systemctl is-system-running: {state!r}\n{failed}")
        pid1 = guest.run(["cat", "/proc/1/comm"], check=True).stdout.strip()
        if pid1 != "systemd":
            raise GuestError(f"PID 1 is {pid1!r}, not systemd")
        hostname = guest.run(["hostname"], check=True).stdout.strip()
        if hostname != guest.name:
            raise GuestError(f"hostname {hostname!r}, not {guest.name!r}")
        links = guest.run(["ip", "-o", "link", "show"], check=True).stdout
        names = [line.split(":")[1].strip().split("@")[0] for line in links.splitlines()]
        if names != ["lo"]:
            raise GuestError(f"network interfaces {names}: only lo expected")
        clock.lap("is-system-running: running; PID 1 systemd; hostname; only lo")

        guest.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "jq"], check=True)
        clock.lap("apt-get install jq (offline, from the cached archives)")
        version = guest.run(["jq", "--version"], check=True).stdout.strip()
        value = guest.run(["jq", "-r", ".a"], input='{"a": "piped"}', check=True).stdout.strip()
        if not version.startswith("jq-") or value != "piped":
            raise GuestError(f"jq: {version!r}, {value!r}")
        clock.lap(f"{version}; stdin reaches the guest")

        guest.run(["sh", "-c", "cat >/etc/systemd/system/phx-selftest.service"], input=UNIT,
                  check=True)
        if not os.path.isfile(os.path.join(guest.rootfs_path(),
                                           "etc/systemd/system/phx-selftest.service")):
            raise GuestError("the unit written in the guest is not under rootfs_path()")
        guest.run(["systemctl", "daemon-reload"], check=True)
        guest.run(["systemctl", "enable", "--now", "phx-selftest.service"], check=True)
        active = guest.run(["systemctl", "is-active", "phx-selftest.service"]).stdout.strip()
        enabled = guest.run(["systemctl", "is-enabled", "phx-selftest.service"]).stdout.strip()
        started = guest.run(["cat", "/run/phx-selftest"]).stdout.strip()
        if (active, enabled, started) != ("active", "enabled", "started"):
            raise GuestError(f"phx-selftest.service: {active}, {enabled}, {started!r}")
        clock.lap("a systemd unit written, enabled and started")

        prefix = guest.argv_prefix()
        via_prefix = subprocess.run(prefix + ["cat", "/etc/hostname"], capture_output=True,
                                    text=True, cwd="/", stdin=subprocess.DEVNULL)
        if via_prefix.stdout.strip() != guest.name:
            raise GuestError(f"argv_prefix(): {via_prefix}")
        missing = guest.run(["/nonexistent"])
        clock.lap(f"argv_prefix() runs commands; a missing command exits {missing.returncode}")
    finally:
        guest.stop()
        guest.stop()  # idempotent
    left = _leftovers(guest)
    if left:
        raise GuestError("left behind: " + "; ".join(left))
    clock.lap("stopped and removed (nothing left: directory, mounts, cgroups)")

    if docker:
        _docker_trial(rootfs, base_dir, clock)
    print(f"selftest: passed in {time.monotonic() - clock.t0:.1f}s", flush=True)


def _docker_trial(rootfs, base_dir, clock):
    """Docker's engine in a guest made with docker=True: reported, never failing the selftest."""
    guest = None
    try:
        guest = start(rootfs, "dockertry", base_dir=base_dir, docker=True)
        clock.lap(f"docker trial: started {guest.name}")
        guest.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "docker.io"],
                  check=True)
        clock.lap("docker trial: apt-get install docker.io (offline)")
        guest.run(["systemctl", "start", "docker"], check=True, timeout=120)
        info = guest.run(["docker", "info", "--format",
                          "{{.ServerVersion}} {{.Driver}} cgroup v{{.CgroupVersion}}"],
                         check=True).stdout.strip()
        clock.lap(f"docker trial: dockerd active ({info})")
        busybox = "/bin/busybox"
        if os.path.isfile(busybox):  # Debian's busybox-static on the host (install-deps.sh)
            img = os.path.join(guest.rootfs_path(), "root/phx-img/bin")
            os.makedirs(img)
            shutil.copy2(busybox, img)
            os.symlink("busybox", os.path.join(img, "sh"))
            guest.run(["sh", "-c", "tar -C /root/phx-img -c . | docker import - phx-selftest:1"],
                      check=True)
            out = guest.run(["docker", "run", "--rm", "phx-selftest:1", "/bin/sh", "-c",
                             "echo nested"], check=True, timeout=120).stdout.strip()
            clock.lap(f"docker trial: docker run of an imported busybox image said {out!r}")
    except GuestError as e:
        print(f"  docker trial FAILED (not part of the selftest): {e}", flush=True)
    finally:
        if guest is not None:
            guest.stop()
            left = _leftovers(guest)
            if left:
                raise GuestError("docker trial left behind: " + "; ".join(left))
            clock.lap("docker trial: stopped and removed")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("selftest", help="start a guest, install offline, run a unit, remove it")
    p.add_argument("rootfs")
    p.add_argument("--base-dir")
    p.add_argument("--no-docker", action="store_true", help="skip the (non-fatal) docker trial")
    p = sub.add_parser("start", help="start a guest and leave it running; prints its state")
    p.add_argument("rootfs")
    p.add_argument("--prefix", default="phx")
    p.add_argument("--base-dir")
    p.add_argument("--docker", action="store_true")
    p = sub.add_parser("stop", help="stop a guest started by `start`")
    p.add_argument("dir", help="the guest's directory or its state.json")
    p = sub.add_parser("cleanup", help="stop guests whose owning process has died")
    p.add_argument("--base-dir")
    args = parser.parse_args(argv)
    try:
        if args.command == "selftest":
            selftest(args.rootfs, args.base_dir, docker=not args.no_docker)
        elif args.command == "start":
            guest = start(args.rootfs, args.prefix, base_dir=args.base_dir, docker=args.docker)
            guest.detach()
            print(json.dumps({**guest.state, "boot_state": guest.boot_state,
                              "argv_prefix": guest.argv_prefix()}, indent=2, sort_keys=True))
        elif args.command == "stop":
            if not os.path.exists(args.dir):  # stopped already: stopping is idempotent
                print(f"lxc_guest: {args.dir}: not there (stopped already)", file=sys.stderr)
                return 0
            load(args.dir).stop()
        elif args.command == "cleanup":
            for name in cleanup(args.base_dir):
                print(f"stopped {name}")
    except GuestError as e:
        print(f"lxc_guest: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
