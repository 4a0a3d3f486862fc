#!/usr/bin/python3
"""Smoke test of tests/tools/netns_engine.py: a second dockerd in its own network namespace
starts, answers on its socket, has the test image, runs in that namespace, reaches the main
engine's swarm manager port from there, and leaves nothing behind when stopped.

Needs root and the environment scripts/docker-env.sh prepares (the main engine in an active swarm,
the image phoenix-test/busybox:1). Without them it exits 77 (CTest's skip), or fails under CI=true.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netns_engine  # noqa: E402

SKIP = 77
DEFERRED_SIGNALS = {signal.SIGTERM, signal.SIGHUP, signal.SIGINT}
# Connects from wherever it runs; exits 0 when the TCP handshake completes.
CONNECT = ("import socket, sys\n"
           "socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5).close()\n")


def unavailable(reason):
    if os.environ.get("CI") == "true":
        print(f"FAIL: {reason}. Under CI=true this test must run: scripts/test.sh runs "
              "scripts/install-deps.sh and scripts/docker-env.sh first.", file=sys.stderr)
        return 1
    print(f"SKIP: {reason}")
    return SKIP


def prerequisites():
    """None when the test can run, else why not."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, a second dockerd)"
    for tool in ("dockerd", "docker", "ip", "nsenter", "umount"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/install-deps.sh installs it)"
    if not netns_engine.ping(netns_engine.MAIN_SOCKET):
        return (f"no Docker engine answers on {netns_engine.MAIN_SOCKET} "
                "(scripts/docker-env.sh starts one)")
    status, _ = netns_engine.api(netns_engine.MAIN_SOCKET, "GET",
                                 f"/images/{netns_engine.TEST_IMAGE}/json")
    if status != 200:
        return (f"the main engine has no image {netns_engine.TEST_IMAGE} "
                "(scripts/docker-env.sh builds it)")
    swarm = main_swarm()
    if swarm.get("LocalNodeState") != "active" or not swarm.get("NodeAddr"):
        return "the main engine is not in an active swarm (scripts/docker-env.sh initialises one)"
    return None


def main_swarm():
    status, body = netns_engine.api(netns_engine.MAIN_SOCKET, "GET", "/info")
    return json.loads(body).get("Swarm", {}) if status == 200 else {}


class Checks:
    def __init__(self):
        self.failures = []

    def check(self, ok, what):
        print(f"{'ok' if ok else 'FAIL'}: {what}")
        if not ok:
            self.failures.append(what)
        return ok


def run_checks(engine, checks):
    state = engine.state
    checks.check(netns_engine.ping(engine.socket_path),
                 f"/_ping answers OK on {state['socket']}")
    status, _ = netns_engine.api(engine.socket_path, "GET",
                                 f"/images/{netns_engine.TEST_IMAGE}/json")
    checks.check(status == 200, f"{netns_engine.TEST_IMAGE} is loaded in the engine")
    status, body = netns_engine.api(engine.socket_path, "GET", "/info")
    info = json.loads(body) if status == 200 else {}
    checks.check(info.get("Name") == state["hostname"],
                 f"the engine's name is its own ({info.get('Name')!r})")
    netns = netns_engine.ns_id(engine.netns_path)
    dockerd_netns = netns_engine.ns_id(f"/proc/{state['pid']}/ns/net")
    checks.check(netns is not None and dockerd_netns == netns,
                 f"dockerd {state['pid']} runs in network namespace {state['netns']}")
    checks.check(dockerd_netns != netns_engine.ns_id("/proc/self/ns/net"),
                 "that namespace is not the host's")

    manager = main_swarm()["NodeAddr"]
    probe = subprocess.run(
        ["nsenter", f"--net={engine.netns_path}", sys.executable, "-c", CONNECT, manager, "2377"],
        capture_output=True, text=True, timeout=30)
    checks.check(probe.returncode == 0,
                 f"from the namespace, TCP {manager}:2377 (the swarm manager) connects"
                 + (f": {probe.stderr.strip().splitlines()[-1]}" if probe.returncode else ""))


def check_gone(state, checks):
    checks.check(not os.path.exists(os.path.join(netns_engine.NETNS_DIR, state["netns"])),
                 f"netns {state['netns']} is gone")
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    for link in (state["veth_host"], state["veth_ns"]):
        checks.check(f" {link}:" not in links and f" {link}@" not in links,
                     f"link {link} is gone")
    checks.check(not netns_engine.alive(state["pid"]), f"dockerd {state['pid']} is gone")
    marker = state["dir"] + "/"
    left = [p for p in netns_engine.pids()
            if netns_engine.alive(p) and marker in netns_engine.cmdline(p)]
    checks.check(not left, f"no process runs from {state['dir']} (containerd, shims){left or ''}")
    checks.check(not netns_engine.mounts_under(state["dir"]),
                 f"nothing is mounted below {state['dir']}")
    checks.check(not os.path.exists(state["dir"]), f"{state['dir']} is removed")


def raise_on_signal(signum, _frame):
    raise SystemExit(128 + signum)


def cleanup(engine, base, checks):
    """Stops the engine and removes the base directory; signals wait until both are done."""
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, DEFERRED_SIGNALS)
    try:
        if engine is not None:
            t0 = time.monotonic()
            try:
                engine.stop()
            except netns_engine.EngineError as e:
                checks.check(False, f"the engine stops cleanly: {e}")
            print(f"stopped in {time.monotonic() - t0:.2f}s")
        if base is not None:
            shutil.rmtree(base, ignore_errors=True)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def main():
    why = prerequisites()
    if why:
        return unavailable(why)
    for sig in DEFERRED_SIGNALS:
        signal.signal(sig, raise_on_signal)

    checks = Checks()
    base = engine = None
    try:
        base = tempfile.mkdtemp(prefix="phx-netns-test-", dir="/tmp")
        engine = netns_engine.NetnsEngine(prefix="phxt", base_dir=base)
        t0 = time.monotonic()
        engine.start()
        print(f"started {engine.state['netns']} ({engine.state['addr']}) in "
              f"{time.monotonic() - t0:.2f}s")
        run_checks(engine, checks)
    except netns_engine.EngineError as e:
        checks.check(False, f"the engine starts: {e}")
    finally:
        cleanup(engine, base, checks)
    if engine is not None:
        check_gone(engine.state, checks)
        try:
            engine.stop()
            checks.check(True, "a second stop() finds nothing to do")
        except netns_engine.EngineError as e:
            checks.check(False, f"a second stop() finds nothing to do: {e}")

    if checks.failures:
        print(f"{len(checks.failures)} check(s) failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
