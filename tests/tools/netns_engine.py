#!/usr/bin/python3
"""A second Docker engine in its own network namespace (DESIGN.md §5): the swarm worker that the
tests and the lab join to the main engine's swarm.

It gets a network namespace, a veth pair to the host (a /30 from a private range that no route
on the host uses), its own dockerd started with `nsenter --net=...` (not `ip netns exec`, which
remounts /sys and hides the cgroups), its own containerd under its exec-root, its own UTS
namespace (so that it shows as a node of its own name in the swarm) and the test image loaded
from the main engine. Every name is unique (prefix, pid, random suffix); everything lives in one
directory under the given base directory. No global setting is changed: the namespace reaches
the host's own addresses (the swarm manager's advertise address) through the veth without
forwarding.

Overlay (VXLAN) traffic between the main engine and this one needs the host to send to the
namespace *from the main engine's swarm advertise address*: the namespace's engine learns, by
gossip, a static (permanent) forwarding entry "MAC of a remote container -> advertise address" for
every container on the main engine, and its VXLAN devices (created with learning on) drop every
packet whose outer source address differs from that entry (the kernel's vxlan_snoop(): static
entries are never migrated). The kernel would pick the veth's own host address as the source, so
the route to the /30 is given the advertise address as its preferred source (see _host_source()).

As a module:

    engine = NetnsEngine(prefix="phx", base_dir=tmp)
    try:
        state = engine.start()      # {"netns", "socket", "addr", "host_addr", "pid", "dir", ...}
        ...
    finally:
        engine.stop()               # idempotent, safe from finally/atexit/signal handlers

As a command (leaves the engine running; state.json in its directory records what to stop):

    netns_engine.py start --prefix phx --dir DIR [--tls-ca CA --tls-cert CERT --tls-key KEY]
    netns_engine.py stop --state STATE_JSON_OR_DIR

Needs root, iproute2, util-linux (nsenter, umount) and Debian's docker.io; Python standard library
only.
"""
import argparse
import contextlib
import ctypes
import fcntl
import http.client
import ipaddress
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

MAIN_SOCKET = "/var/run/docker.sock"
TEST_IMAGE = "phoenix-test/busybox:1"
NETNS_DIR = "/var/run/netns"
TLS_PORT = 2376
# Where the veth /30 comes from, in order. 10.200.0.0/13 is far from what Docker allocates by
# default (swarm overlays from 10.0.0.0/24 upwards, bridges from 172.17.0.0/16 and 192.168.0.0/20).
ADDRESS_POOLS = ("10.200.0.0/13", "192.168.224.0/19", "172.31.0.0/16")
ALLOCATION_LOCK = "/run/lock/phoenix-netns-engine.lock"
# A unix socket path holds at most 107 bytes; containerd's is the longest below the exec-root.
_LONGEST_SOCKET_SUFFIX = "/exec/containerd/containerd.sock.ttrpc"
_ROUTE_TYPES = {"unicast", "local", "broadcast", "multicast", "blackhole", "unreachable",
                "prohibit", "throw", "nat", "anycast"}
_CLONE_NEWUTS = 0x04000000


class EngineError(Exception):
    """A step of starting or stopping the engine failed; the message says which and why."""


# --- small helpers -----------------------------------------------------------------------------

def _run(argv, *, timeout=60, check=True, stdin=None):
    try:
        done = subprocess.run(argv, stdin=stdin, capture_output=True, text=True, timeout=timeout,
                              env=_cli_env())
    except FileNotFoundError:
        raise EngineError(f"{argv[0]}: not found") from None
    except subprocess.TimeoutExpired:
        raise EngineError(f"{' '.join(argv)}: no answer within {timeout}s") from None
    if check and done.returncode != 0:
        raise EngineError(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}")
    return done


def _cli_env():
    """The environment for the docker CLI: -H alone says which engine, whatever the caller set."""
    env = dict(os.environ)
    for k in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
        env.pop(k, None)
    return env


def _poll(predicate, deadline_s, interval_s=0.1):
    """Calls predicate until it returns something true or the deadline passes; returns the last
    value."""
    deadline = time.monotonic() + deadline_s
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval_s)


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def api(socket_path, method, path, *, timeout=10):
    """One Engine API request over a unix socket: (status, body bytes). Raises OSError when
    nothing answers."""
    conn = _UnixHTTPConnection(socket_path, timeout)
    try:
        conn.request(method, path, headers={"Host": "docker"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def ping(socket_path, timeout=2):
    """True when an engine answers /_ping on the socket."""
    try:
        status, body = api(socket_path, "GET", "/_ping", timeout=timeout)
    except (OSError, http.client.HTTPException):
        return False
    return status == 200 and body.strip() == b"OK"


def _socket_path(url):
    return url[len("unix://"):] if url.startswith("unix://") else url


def _b36(n):
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def _proc_state(pid):
    """The process state letter from /proc/PID/stat, or None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def alive(pid):
    """A process that exists and is not a zombie (a zombie holds nothing but its pid)."""
    return _proc_state(pid) not in (None, "Z", "X")


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _ppid(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("PPid:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def ns_id(path):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def mounts_under(directory):
    """Mount points at or below directory, deepest first."""
    prefix = directory.rstrip("/") + "/"
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
            if point == directory or point.startswith(prefix):
                found.append(point)
    return sorted(set(found), key=lambda p: (p.count("/"), p), reverse=True)


def _tail(path, lines=20):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


@contextlib.contextmanager
def _allocation_lock():
    """Serialises choosing a subnet and putting it on a link, across concurrent tests."""
    path = ALLOCATION_LOCK if os.access(os.path.dirname(ALLOCATION_LOCK), os.W_OK) else \
        os.path.join(tempfile.gettempdir(), os.path.basename(ALLOCATION_LOCK))
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _networks_in_use():
    used = []
    routes = _run(["ip", "-4", "-o", "route", "show", "table", "all"]).stdout
    for line in routes.splitlines():
        words = line.split()
        if not words:
            continue
        dst = words[1] if words[0] in _ROUTE_TYPES and len(words) > 1 else words[0]
        if dst == "default":
            continue
        with contextlib.suppress(ValueError):
            net = ipaddress.ip_network(dst, strict=False)
            if net.prefixlen > 0:
                used.append(net)
    for line in _run(["ip", "-4", "-o", "addr", "show"]).stdout.splitlines():
        words = line.split()
        if "inet" in words:
            with contextlib.suppress(ValueError, IndexError):
                used.append(ipaddress.ip_interface(words[words.index("inet") + 1]).network)
    return used


def _free_subnet(prefixlen=30):
    used = _networks_in_use()
    rng = random.SystemRandom()
    for pool in map(ipaddress.ip_network, ADDRESS_POOLS):
        count = 2 ** (prefixlen - pool.prefixlen)
        for _ in range(256):
            start = int(pool.network_address) + rng.randrange(count) * 2 ** (32 - prefixlen)
            candidate = ipaddress.ip_network((start, prefixlen))
            if not any(candidate.overlaps(u) for u in used):
                return candidate
    raise EngineError(f"no free /{prefixlen} in {', '.join(ADDRESS_POOLS)}: every candidate "
                      "overlaps a route or an address on this host")


def _enter_own_uts(hostname):
    """Runs in the child between fork and exec: a UTS namespace of its own, with its own name."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(_CLONE_NEWUTS) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWUTS)")
    socket.sethostname(hostname)


# --- the engine --------------------------------------------------------------------------------

class NetnsEngine:
    """One dockerd in a network namespace of its own. `state` holds every name it uses; it is
    written to DIR/state.json before anything is created, so a later stop() (or `netns_engine.py
    stop`) finds everything even after a failed start."""

    def __init__(self, prefix="phx", base_dir=None, *, tls=None, image=TEST_IMAGE,
                 main_socket=MAIN_SOCKET, storage_driver=None, start_deadline_s=90,
                 stop_deadline_s=30):
        if not re.fullmatch(r"[a-z][a-z0-9]{0,15}", prefix):
            raise EngineError(f"prefix '{prefix}': use 1 to 16 lower-case letters and digits, "
                              "starting with a letter")
        if tls is not None and not callable(tls) and set(tls) != {"ca", "cert", "key"}:
            raise EngineError("tls needs exactly the files 'ca', 'cert' and 'key'")
        self._image = image
        self._main_socket = main_socket
        self._storage_driver = storage_driver
        self._start_deadline_s = start_deadline_s
        self._stop_deadline_s = stop_deadline_s
        # A callable is called with the engine's address once it is chosen, and returns the
        # files: a server certificate can then name that address.
        self._tls = (tls if callable(tls) else
                     {k: os.path.abspath(v) for k, v in tls.items()} if tls else None)
        self._proc = None
        base = os.path.abspath(base_dir or tempfile.gettempdir())
        pid = os.getpid()
        rand = secrets.token_hex(2)
        tag = f"{prefix}-{pid}-{rand}"
        short = f"{prefix[:3]}{_b36(pid)}{rand}"  # at most 3 + 5 + 4 characters
        directory = os.path.join(base, tag)
        self.state = {
            "netns": tag,
            "hostname": tag,
            "veth_host": short + "h",
            "veth_ns": short + "n",
            "dir": directory,
            "socket": f"unix://{directory}/docker.sock",
            "addr": None,
            "host_addr": None,
            "host_src": None,
            "prefixlen": None,
            "tcp": None,
            "pid": None,
            "owner_pid": pid,
            "log": os.path.join(directory, "dockerd.log"),
        }

    @classmethod
    def from_state(cls, state, *, main_socket=MAIN_SOCKET):
        """An engine to stop, from the state a start() recorded (in this or another process)."""
        engine = cls.__new__(cls)
        engine._image = TEST_IMAGE
        engine._main_socket = main_socket
        engine._storage_driver = None
        engine._start_deadline_s = 90
        engine._stop_deadline_s = 30
        engine._tls = None
        engine._proc = None
        engine.state = dict(state)
        for key in ("netns", "veth_host", "dir"):
            if not engine.state.get(key):
                raise EngineError(f"state has no '{key}'")
        return engine

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    @property
    def socket_path(self):
        return _socket_path(self.state["socket"])

    @property
    def netns_path(self):
        return os.path.join(NETNS_DIR, self.state["netns"])

    def docker(self, *args, timeout=60, check=True):
        """Runs the docker CLI against this engine."""
        return _run(["docker", "-H", self.state["socket"], *args], timeout=timeout, check=check)

    def _save(self):
        path = os.path.join(self.state["dir"], "state.json")
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.state, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)

    # -- start --

    def start(self):
        """Creates the namespace and starts the engine; on any failure undoes what it did and
        raises. Returns the state."""
        if os.geteuid() != 0:
            raise EngineError("needs root: network namespaces, veth links and dockerd")
        directory = self.state["dir"]
        if len(directory + _LONGEST_SOCKET_SUFFIX) > 107:
            raise EngineError(f"{directory}: too long for unix socket paths below it; "
                              "use a shorter base directory")
        os.makedirs(os.path.dirname(directory), exist_ok=True)
        os.mkdir(directory, 0o700)
        try:
            self._save()
            self._make_network()
            self._start_dockerd()
            self._load_image()
        except BaseException as e:
            try:
                self.stop()
            except EngineError as cleanup:
                raise EngineError(f"{e}; and cleaning up failed: {cleanup}") from e
            raise
        return self.state

    def _make_network(self):
        s = self.state
        with _allocation_lock():
            subnet = _free_subnet()
            host_addr, ns_addr = (str(a) for a in list(subnet.hosts())[:2])
            s.update(host_addr=host_addr, addr=ns_addr, prefixlen=subnet.prefixlen)
            self._save()
            _run(["ip", "netns", "add", s["netns"]])
            _run(["ip", "link", "add", s["veth_host"], "type", "veth",
                  "peer", "name", s["veth_ns"], "netns", s["netns"]])
            _run(["ip", "addr", "add", f"{host_addr}/{subnet.prefixlen}", "dev", s["veth_host"]])
        ns = ["ip", "-n", s["netns"]]
        _run(["ip", "link", "set", s["veth_host"], "up"])
        _run(ns + ["link", "set", "lo", "up"])
        _run(ns + ["addr", "add", f"{ns_addr}/{subnet.prefixlen}", "dev", s["veth_ns"]])
        _run(ns + ["link", "set", s["veth_ns"], "up"])
        _run(ns + ["route", "add", "default", "via", host_addr])
        # What the host sends into the namespace leaves from the main engine's advertise address,
        # not from host_addr: see the module's docstring (VXLAN). The namespace answers that
        # address through its default route.
        source = self._host_source()
        s["host_src"] = source
        self._save()
        if source:
            _run(["ip", "route", "replace", str(subnet), "dev", s["veth_host"], "proto", "kernel",
                  "scope", "link", "src", source])

    def _host_source(self):
        """The host address that the host's packets to the namespace leave from: the main engine's
        swarm advertise address (Swarm.NodeAddr) when it is an address of this host, else (no swarm
        yet) the address `docker swarm init` would advertise, that of the interface carrying the
        default route (as scripts/docker-env.sh picks it); None when there is neither."""
        local = {}
        for line in _run(["ip", "-4", "-o", "addr", "show", "scope", "global"]).stdout.splitlines():
            words = line.split()
            if "inet" in words and len(words) > 1:
                with contextlib.suppress(ValueError, IndexError):
                    addr = str(ipaddress.ip_interface(words[words.index("inet") + 1]).ip)
                    local.setdefault(words[1], []).append(addr)
        with contextlib.suppress(OSError, http.client.HTTPException, ValueError):
            status, body = api(self._main_socket, "GET", "/info", timeout=5)
            if status == 200:
                node_addr = (json.loads(body).get("Swarm") or {}).get("NodeAddr") or ""
                if any(node_addr in addrs for addrs in local.values()):
                    return node_addr
        for line in _run(["ip", "-4", "-o", "route", "show", "default"]).stdout.splitlines():
            words = line.split()
            if "dev" in words and words.index("dev") + 1 < len(words):
                addrs = local.get(words[words.index("dev") + 1])
                if addrs:
                    return addrs[0]
        return None

    def _start_dockerd(self):
        s = self.state
        d = s["dir"]
        # An own configuration file: the main engine's /etc/docker/daemon.json (data-root,
        # storage driver, ...) would clash with the flags below.
        config = {"storage-driver": self._storage_driver} if self._storage_driver else {}
        with open(os.path.join(d, "daemon.json"), "w") as f:
            json.dump(config, f)
        argv = ["nsenter", f"--net={self.netns_path}", "dockerd",
                "--config-file", os.path.join(d, "daemon.json"),
                "--data-root", os.path.join(d, "data"),
                "--exec-root", os.path.join(d, "exec"),
                "--pidfile", os.path.join(d, "dockerd.pid"),
                "-H", s["socket"],
                "--bridge=none", "--iptables=false", "--ip-masq=false"]
        if callable(self._tls):
            self._tls = {k: os.path.abspath(v) for k, v in self._tls(s["addr"]).items()}
        if self._tls:
            s["tcp"] = f"tcp://{s['addr']}:{TLS_PORT}"
            argv += ["-H", s["tcp"], "--tlsverify", "--tlscacert", self._tls["ca"],
                     "--tlscert", self._tls["cert"], "--tlskey", self._tls["key"]]
        # No registry can be reached: without this, every swarm task on this node first tries to
        # pull its image and waits for the namespace's DNS lookups to time out (20 s and more).
        env = dict(_cli_env(), DOCKER_SERVICE_PREFER_OFFLINE_IMAGE="1")
        with open(s["log"], "ab") as log:
            # nsenter and dockerd exec in turn: the child's pid is dockerd's. A session of its own
            # keeps it out of the caller's terminal signals; `start` on the command line leaves it
            # running.
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, env=env,
                preexec_fn=lambda: _enter_own_uts(s["hostname"]))
        s["pid"] = self._proc.pid
        self._save()

        def ready():
            if self._proc.poll() is not None:
                raise EngineError(f"dockerd exited with status {self._proc.returncode} before "
                                  f"answering; {s['log']} ends with:\n{_tail(s['log'])}")
            return ping(self.socket_path, timeout=1)

        if not _poll(ready, self._start_deadline_s, 0.1):
            raise EngineError(f"dockerd did not answer on {s['socket']} within "
                              f"{self._start_deadline_s}s; {s['log']} ends with:\n"
                              f"{_tail(s['log'])}")

    def _load_image(self):
        if not self._image:
            return
        with tempfile.TemporaryFile() as save_err:
            save = subprocess.Popen(["docker", "-H", f"unix://{self._main_socket}", "save",
                                     self._image],
                                    stdout=subprocess.PIPE, stderr=save_err, env=_cli_env())
            try:
                load = subprocess.Popen(["docker", "-H", self.state["socket"], "load", "-q"],
                                        stdin=save.stdout, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, env=_cli_env())
            finally:
                save.stdout.close()  # load holds the only reader: save sees EPIPE if load dies
            try:
                _, load_stderr = load.communicate(timeout=180)
                save.wait(timeout=30)
            except subprocess.TimeoutExpired:
                load.kill()
                save.kill()
                load.wait()
                save.wait()
                raise EngineError(f"copying {self._image} into the engine took over 180s") from None
            save_err.seek(0)
            if save.returncode != 0:
                raise EngineError(f"docker save {self._image} from {self._main_socket}: exit "
                                  f"{save.returncode}: {save_err.read().decode().strip()}")
            if load.returncode != 0:
                raise EngineError(f"docker load into {self.state['socket']}: exit "
                                  f"{load.returncode}: {load_stderr.strip()}")

    # -- stop --

    def stop(self):
        """Leaves the swarm, stops dockerd and everything it started, unmounts what is mounted
        below the directory, deletes the namespace and the veth pair and removes the directory.
        Idempotent: each step looks at what is there. Raises EngineError listing what could not be
        undone, after trying every step. SIGINT, SIGTERM and SIGHUP wait until it is done: a
        handler that raises would otherwise cut the cleanup short."""
        errors = []
        deferred = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, deferred)
        try:
            for step in (self._leave_swarm, self._kill_containers, self._stop_dockerd,
                         self._kill_leftovers, self._unmount, self._delete_network,
                         self._remove_dir):
                try:
                    step()
                except (EngineError, OSError, http.client.HTTPException, ValueError,
                        subprocess.SubprocessError) as e:
                    errors.append(f"{step.__name__.strip('_').replace('_', ' ')}: {e}")
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        if errors:
            raise EngineError("; ".join(errors))

    def _leave_swarm(self):
        if not os.path.exists(self.socket_path) or not ping(self.socket_path):
            return
        status, body = api(self.socket_path, "GET", "/info")
        swarm = json.loads(body).get("Swarm", {}) if status == 200 else {}
        node_id = swarm.get("NodeID")
        if swarm.get("LocalNodeState", "inactive") != "inactive":
            status, body = api(self.socket_path, "POST", "/swarm/leave?force=1", timeout=60)
            if status not in (200, 503):  # 503: not part of a swarm (any more)
                raise EngineError(f"swarm leave: {status} {body.decode(errors='replace').strip()}")
        # The node this engine was stays in the manager's list, as down; it is ours to remove.
        if node_id and ping(self._main_socket):
            status, body = api(self._main_socket, "DELETE", f"/nodes/{node_id}?force=1")
            if status not in (200, 404, 503):
                raise EngineError(f"node rm {node_id} on {self._main_socket}: {status} "
                                  f"{body.decode(errors='replace').strip()}")

    def _kill_containers(self):
        """Kills what still runs, so that dockerd's shutdown does not wait out each container's
        stop timeout."""
        if not os.path.exists(self.socket_path) or not ping(self.socket_path):
            return
        status, body = api(self.socket_path, "GET", "/containers/json")
        if status != 200:
            raise EngineError(f"list containers: {status} {body.decode(errors='replace').strip()}")
        for container in json.loads(body):
            status, body = api(self.socket_path, "POST", f"/containers/{container['Id']}/kill")
            if status not in (204, 404, 409):  # 404, 409: gone or stopped meanwhile
                raise EngineError(f"kill container {container['Id'][:12]}: {status} "
                                  f"{body.decode(errors='replace').strip()}")

    def _is_our_dockerd(self, pid):
        return alive(pid) and self.state["dir"] + "/" in cmdline(pid)

    def _stop_dockerd(self):
        pid = self.state.get("pid")
        if not pid or not self._is_our_dockerd(pid):
            self._reap()
            return
        # dockerd stops its containers and its containerd on SIGTERM.
        os.kill(pid, signal.SIGTERM)
        if not _poll(lambda: self._reap() or not self._is_our_dockerd(pid),
                     self._stop_deadline_s, 0.1):
            os.kill(pid, signal.SIGKILL)
            if not _poll(lambda: self._reap() or not self._is_our_dockerd(pid), 10, 0.1):
                raise EngineError(f"dockerd {pid} survived SIGKILL")

    def _reap(self):
        """Collects dockerd's exit status when it is our child, so that it leaves no zombie."""
        if self._proc is not None:
            self._proc.poll()
        return False

    def _leftovers(self):
        """Processes that belong to the engine: whatever names the directory on its command line
        (containerd, shims), whatever runs in the namespace, and the children of those (the init
        processes of containers, each in a network namespace of its own)."""
        mine = {os.getpid()}
        netns = ns_id(self.netns_path)
        marker = self.state["dir"] + "/"
        found = set()
        for pid in pids():
            if pid in mine or not alive(pid):
                continue
            if marker in cmdline(pid) or (netns and ns_id(f"/proc/{pid}/ns/net") == netns):
                found.add(pid)
        grew = True
        while grew:
            grew = False
            for pid in pids():
                if pid not in found and pid not in mine and _ppid(pid) in found and alive(pid):
                    found.add(pid)
                    grew = True
        return found

    def _kill_leftovers(self):
        left = self._leftovers()
        if not left:
            return
        for sig, wait_s in ((signal.SIGTERM, 2), (signal.SIGKILL, 10)):
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            _poll(lambda: not any(alive(p) for p in left), wait_s, 0.1)
            left = {p for p in left if alive(p)}
            if not left:
                return
        raise EngineError(f"processes {sorted(left)} survived SIGKILL")

    def _unmount(self):
        directory = self.state["dir"]
        if not os.path.isdir(directory):
            return
        deadline = time.monotonic() + 20
        while True:
            mounts = mounts_under(directory)
            if not mounts:
                return
            if time.monotonic() >= deadline:
                raise EngineError(f"still mounted: {', '.join(mounts)}")
            for point in mounts:
                if _run(["umount", point], check=False).returncode != 0:
                    _run(["umount", "-l", point], check=False)

    def _delete_network(self):
        if os.path.exists(self.netns_path):
            _run(["ip", "netns", "delete", self.state["netns"]])
        host_end = f"/sys/class/net/{self.state['veth_host']}"
        if os.path.exists(host_end):
            # Removing one end removes the pair; the namespace's end may already have taken it.
            _run(["ip", "link", "delete", self.state["veth_host"]], check=False)
            if not _poll(lambda: not os.path.exists(host_end), 10, 0.1):
                raise EngineError(f"link {self.state['veth_host']} is still there")

    def _remove_dir(self):
        directory = self.state["dir"]
        if not os.path.exists(directory):
            return
        if mounts_under(directory):  # never delete through a mount into something not ours
            raise EngineError(f"{directory} still has mounts below it; not removed")
        shutil.rmtree(directory)


# --- command line ------------------------------------------------------------------------------

def _states(path):
    """The states a `stop --state` argument names: a state file, an engine's directory, or a base
    directory holding engines' directories."""
    if os.path.isfile(path):
        with open(path) as f:
            return [json.load(f)]
    if os.path.isfile(os.path.join(path, "state.json")):
        return _states(os.path.join(path, "state.json"))
    if os.path.isdir(path):
        found = []
        for name in sorted(os.listdir(path)):
            candidate = os.path.join(path, name, "state.json")
            if os.path.isfile(candidate):
                found += _states(candidate)
        return found
    return []


def _raise_on_signal(signum, _frame):
    raise SystemExit(128 + signum)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="A second dockerd in its own network namespace (DESIGN.md §5).")
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start",
                           help="start an engine, print its state as JSON, leave it running")
    start.add_argument("--prefix", default="phx")
    start.add_argument("--dir", required=True, help="base directory; the engine's is below it")
    start.add_argument("--tls-ca")
    start.add_argument("--tls-cert")
    start.add_argument("--tls-key")
    start.add_argument("--storage-driver", help="default: what dockerd picks")
    start.add_argument("--no-image", action="store_true", help=f"do not load {TEST_IMAGE}")
    stop = sub.add_parser("stop", help="stop engines and remove everything they used")
    stop.add_argument("--state", required=True,
                      help="a state JSON file, an engine's directory, or the --dir of start")
    args = parser.parse_args(argv)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_on_signal)
    try:
        if args.command == "start":
            tls_args = (args.tls_ca, args.tls_cert, args.tls_key)
            if any(tls_args) and not all(tls_args):
                parser.error("--tls-ca, --tls-cert and --tls-key go together")
            tls = dict(zip(("ca", "cert", "key"), tls_args)) if all(tls_args) else None
            engine = NetnsEngine(args.prefix, args.dir, tls=tls, storage_driver=args.storage_driver,
                                 image=None if args.no_image else TEST_IMAGE)
            print(json.dumps(engine.start(), sort_keys=True))
            return 0
        states = _states(args.state)
        failures = 0
        for state in states:
            try:
                NetnsEngine.from_state(state).stop()
            except EngineError as e:
                print(f"netns_engine: error: stopping {state.get('netns')}: {e}", file=sys.stderr)
                failures += 1
        return 1 if failures else 0
    except EngineError as e:
        print(f"netns_engine: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
