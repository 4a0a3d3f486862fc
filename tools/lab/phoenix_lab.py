#!/usr/bin/python3
"""The Phoenix lab: the whole platform on one Debian machine with Docker and no Proxmox
(DESIGN.md §5). `phoenix lab up|down|status|run` runs this program; so does pve-sim, for the
guests it starts and stops (`hook`, `agent`), and Phoenix, for `pct` and the DNS reload.

What `up` makes, all of it under the lab directory (default /var/tmp/phoenix-lab) and in one
network namespace of its own (phx-<name>), so that nothing on the machine's own network changes:

  - the node: a bridge vmbr0 in the namespace holding the estate's node address (10.0.0.13/24 in
    the example), where Phoenix runs (`phoenix lab run ...`) and where the guests' veths plug in;
  - pve-sim on https://127.0.0.1:8006 in that namespace, with an API token whose secret is in
    DIR/secrets, and this program as its guest hook: a container that Proxmox would start is a
    real Debian system container (Debian's lxc, systemd inside, its root filesystem a copy of the
    debootstrap cache of scripts/guest-rootfs.sh, nothing pulled) with the estate's address on
    vmbr0; a VM is the same with a Docker engine allowed inside (each its own network namespace),
    Docker's package installed from the guest's offline archive and the stacks' images loaded
    (stand-ins: no registry can be reached here; each serves HTTP on the ports its routers name);
  - `pct exec` for Phoenix (DIR/bin/pct): lxc-attach into the container of that vmid; a VM's
    QEMU guest agent (pve-sim --agent-exec) the same;
  - dnsmasq on the node address, port 53, reading the records file Phoenix writes below the
    node's root (DIR/node/etc/dnsmasq.d); the guests resolve through it;
  - the estate: a copy of the given one (default examples/estate) in DIR/estate, pointed at all
    of the above: the Proxmox API and its pinned certificate, the node's root, the DNS reload,
    the secrets (generated, mode 0600), the binaries the recipes push (step-ca and step from
    scripts/build-step-ca.sh, Traefik from scripts/build-traefik.sh). The GPU guests (vLLM) are
    left out: there is no GPU here.

The CA is the estate's own: step-ca in its LXC, set up by `sync all`, whose root Phoenix reads
from that guest (step_ca.fingerprint is not needed).

Commands:
  up [--dir D] [--estate DIR] [--name N]    idempotent; prints what to run next
  down [--dir D]                            stops and removes everything up made
  status [--dir D] [--output json]
  run [--dir D] PHOENIX_ARGS...             phoenix -C DIR/estate/etc --state-dir DIR/state ...,
                                            in the lab's namespace with its pct
  faults [--fail-rate F] [--drop-rate F] [--lock-rate F] [--task-fail-rate F] [--latency-ms N]
         [--off]                            pve-sim's injected faults, changed while it runs
Internal: hook start|stop|destroy VMID (pve-sim), agent VMID ARGV..., pct exec VMID -- ARGV...,
dns-reload.

Needs root, Debian's lxc, iproute2, util-linux, dnsmasq and Docker's engine (for the stand-in
images); Python standard library only.
"""
import argparse
import contextlib
import fcntl
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import lxc_guest  # noqa: E402

DEFAULT_DIR = "/var/tmp/phoenix-lab"
TOKEN_ID = "root@pam!phoenix"
PVE_PORT = 8006
BRIDGE = "vmbr0"
STANDIN_BASE = "phoenix-test/busybox:1"
# The ports a stand-in serves besides those of the stacks' routers: Portainer's server and agent.
PORTAINER_PORTS = (9000, 9443, 9001)


class LabError(Exception):
    """What went wrong, and what to do about it."""


def say(msg):
    print(f"lab: {msg}", file=sys.stderr, flush=True)


def run(argv, *, check=True, timeout=120, input=None, env=None):
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input,
                              env=env, stdin=None if input is not None else subprocess.DEVNULL)
    except FileNotFoundError:
        raise LabError(f"{argv[0]}: not found") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"{' '.join(argv)}: no answer within {timeout}s") from None
    if check and done.returncode != 0:
        raise LabError(f"{' '.join(argv)}: exit {done.returncode}: "
                       f"{(done.stderr or done.stdout).strip()[-2000:]}")
    return done


def lab_dir(args):
    return os.path.abspath(getattr(args, "dir", None) or os.environ.get("PHOENIX_LAB_DIR")
                           or DEFAULT_DIR)


def load_state(directory):
    try:
        with open(os.path.join(directory, "lab.json")) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def save_json(path, doc, mode=0o644):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def alive(pid):
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        with open(f"/proc/{pid}/stat") as f:
            if f.read().split(") ", 1)[1].startswith("Z"):
                return False
    return True


def stop_group(pid):
    """Stops the process group of a daemon the lab started: TERM, up to 10 s, then KILL."""
    if not alive(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def netns_path(state):
    return f"/var/run/netns/{state['netns']}"


def in_netns(state, argv):
    return ["nsenter", f"--net={netns_path(state)}", *argv]


@contextlib.contextmanager
def locked(directory, name="lab.lock"):
    with open(os.path.join(directory, name), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# --- the tools the lab needs ---------------------------------------------------------------------

def cached_tool(script, env_name):
    """A binary the project builds into its cache (scripts/build-*.sh, idempotent and cached),
    or the one named by env_name."""
    given = os.environ.get(env_name)
    if given:
        if not os.path.exists(given):
            raise LabError(f"{env_name}={given}: not found")
        return given
    say(f"{env_name} is not set: running scripts/{script} (cached after the first time)")
    done = subprocess.run([os.path.join(REPO, "scripts", script)], stdout=subprocess.PIPE,
                          stdin=subprocess.DEVNULL, text=True)
    if done.returncode != 0 or not done.stdout.strip():
        raise LabError(f"scripts/{script} failed (exit {done.returncode})")
    return done.stdout.strip().splitlines()[-1]


def find_pve_sim(given):
    candidates = [given] if given else []
    candidates += [os.environ.get("PHOENIX_PVE_SIM", "")]
    candidates += [os.path.join(REPO, "build", p, "tools", "pve-sim", "pve-sim")
                   for p in ("release", "ci", "dev")]
    for c in candidates:
        if c and os.access(c, os.X_OK):
            return os.path.abspath(c)
    raise LabError("pve-sim not found: build it (scripts/build.sh release) or pass --pve-sim")


def find_schema(given):
    for c in (given, os.environ.get("PHOENIX_PVE_SCHEMA", ""),
              os.path.join(REPO, "..", "shared", "specs", "pve-apidata.json")):
        if c and os.path.exists(c):
            return os.path.abspath(c)
    raise LabError("the Proxmox API schema (specs/pve-apidata.json) was not found: pass --schema")


# --- the estate ----------------------------------------------------------------------------------

def edit_json(path, fn):
    with open(path) as f:
        doc = json.load(f)
    fn(doc)
    save_json(path, doc)


def write_secret(path, value):
    if os.path.exists(path):
        return
    with open(path + ".tmp", "w") as f:
        os.chmod(path + ".tmp", 0o600)
        f.write(value + "\n")
    os.replace(path + ".tmp", path)


def make_estate(directory, source, tools, fingerprint):
    """The lab's estate: a copy of `source` pointed at the lab. Returns (etc dir, node address,
    the guests left out with why, the features added to VMs)."""
    estate = os.path.join(directory, "estate")
    if not os.path.isdir(os.path.join(source, "etc")):
        raise LabError(f"{source}: not an estate (no etc/ with the configuration files)")
    if os.path.exists(estate):
        shutil.rmtree(estate)
    shutil.copytree(source, estate, ignore=shutil.ignore_patterns("out", "*.tmp"))
    etc = os.path.join(estate, "etc")
    sec = os.path.join(directory, "secrets")
    os.makedirs(sec, mode=0o700, exist_ok=True)
    left_out = {}
    added = {}
    node = {}

    def platform(doc):
        addr = doc.get("network", {}).get("interfaces", {}).get("address", "10.0.0.13/24")
        node["address"] = addr
        api = doc.setdefault("proxmox_api", {})
        api.update(url=f"https://127.0.0.1:{PVE_PORT}", token_id=TOKEN_ID,
                   token_secret_file=os.path.join(sec, "proxmox_token"),
                   fingerprint=fingerprint, host_root=os.path.join(directory, "node"))
        api.pop("host_ssh", None)
        api.setdefault("node", "phoenix")
        node["name"] = api["node"]
        dns = doc.setdefault("dns_server", {})
        dns["reload"] = [sys.executable, os.path.abspath(__file__), "dns-reload",
                         "--dir", directory]
        ca = doc.setdefault("step_ca", {})
        ca["provisioner_password_file"] = os.path.join(sec, "step_provisioner_password")
        ca.pop("fingerprint", None)
        if "portainer_api" in doc:
            doc["portainer_api"]["admin_password_file"] = os.path.join(
                sec, "portainer_admin_password")
        doc["guest_features"] = {"step_binary": tools["step"], "step_ca_binary": tools["step_ca"],
                                 "traefik_binary": tools["traefik"]}
        users = doc.get("users")
        if isinstance(users, dict) and "ssh_public_key_file" in users:
            users["ssh_public_key_file"] = os.path.join(sec, "id_lab.pub")
    edit_json(os.path.join(etc, "phoenix_hypervisor_config.json"), platform)

    def lxcs(doc):
        for ctid, c in list(doc.get("lxc_configs", {}).items()):
            gpu = c.get("gpu_assignment")
            if gpu not in (None, "none", "") or "vllm" in c.get("features", []):
                left_out[ctid] = "it needs a GPU, which this machine does not have"
                del doc["lxc_configs"][ctid]
        for c in doc.get("lxc_configs", {}).values():
            if "dependencies" in c:
                c["dependencies"] = [d for d in c["dependencies"] if str(d) not in left_out]
    edit_json(os.path.join(etc, "phoenix_lxc_configs.json"), lxcs)

    vm_path = os.path.join(etc, "phoenix_vm_configs.json")
    if os.path.exists(vm_path):
        def vms(doc):
            defaults = doc.get("vm_defaults", {})
            if "ssh_public_key_file" in defaults:
                defaults["ssh_public_key_file"] = os.path.join(sec, "id_lab.pub")
            # Phoenix joins a worker through its engine's API: a worker whose engine is not on
            # TCP (no docker_proxy) could not be joined.
            for vm in doc.get("vms", []):
                feats = vm.get("features", [])
                if vm.get("swarm_role") == "worker" and "docker" in feats and \
                        "docker_proxy" not in feats:
                    feats.insert(feats.index("docker") + 1, "docker_proxy")
                    added[str(vm.get("vmid"))] = "docker_proxy"
        edit_json(vm_path, vms)

    write_secret(os.path.join(sec, "step_provisioner_password"), "lab-" + secrets.token_hex(16))
    write_secret(os.path.join(sec, "portainer_admin_password"), "lab-" + secrets.token_hex(12))
    pub = os.path.join(sec, "id_lab.pub")
    if not os.path.exists(pub):
        with open(pub, "w") as f:
            f.write("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPhoenixLabKeyNotForLoginXXXXXXXXXXXXXXXX"
                    " phoenix-lab\n")
    return etc, node, left_out, added


# --- stand-in images -----------------------------------------------------------------------------

def stack_images(phoenix, etc, directory):
    """The images the swarm will run (from the rendered compose files and Portainer's settings),
    and the ports their routers name."""
    out = os.path.join(directory, "render")
    run([phoenix, "-C", etc, "render", "--out", out], timeout=120)
    images, ports = set(), set(PORTAINER_PORTS)
    stacks = os.path.join(out, "stacks")
    for name in sorted(os.listdir(stacks)) if os.path.isdir(stacks) else []:
        with open(os.path.join(stacks, name, "docker-compose.yml")) as f:
            text = f.read()
        images |= {m.strip().strip("'\"") for m in re.findall(r"^\s+image:\s*(\S+)\s*$", text,
                                                                re.M)}
        # Labels as a list ("...port=80") or as a map (...port: "80").
        ports |= {int(p) for p in re.findall(
            r"loadbalancer\.server\.port\s*[=:]\s*['\"]?(\d+)", text)}
    with open(os.path.join(etc, "phoenix_hypervisor_config.json")) as f:
        docker = json.load(f).get("docker", {})
    for key in ("portainer_server_image", "portainer_agent_image"):
        if docker.get(key):
            images.add(docker[key])
    return sorted(images), sorted(ports)


def build_standins(directory, images, ports):
    """Stand-in images for the stacks' images, saved to DIR/images.tar: busybox's httpd on every
    port, answering with the image's name. They are built on this machine's engine under tags of
    the lab's own (removed once saved: an image of the machine's is never touched) and take the
    stacks' names only inside the VMs. Returns (tar, {stack image: lab tag})."""
    tar = os.path.join(directory, "images.tar")
    tags = {image: f"phoenix-lab-standin/{re.sub(r'[^a-z0-9]+', '-', image.lower())}:"
                   f"{secrets.token_hex(4)}" for image in images}
    run([os.path.join(REPO, "scripts", "docker-env.sh")], timeout=600)
    try:
        with tempfile.TemporaryDirectory(prefix="phoenix-lab-image-") as ctx:
            for image, tag in tags.items():
                with open(os.path.join(ctx, "serve"), "w") as f:
                    f.write("#!/bin/sh\n"
                            f"# A stand-in for {image} in the Phoenix lab (no registry here).\n"
                            "mkdir -p /www\n"
                            f'echo "phoenix lab stand-in for {image} on $(hostname)" '
                            "> /www/index.html\n"
                            f"for p in {' '.join(map(str, ports))}; do httpd -p \"$p\" -h /www; "
                            "done\n"
                            "exec sleep 2147483647\n")
                with open(os.path.join(ctx, "Dockerfile"), "w") as f:
                    f.write(f"FROM {STANDIN_BASE}\nCOPY serve /phoenix-lab-serve\n"
                            'ENTRYPOINT ["/bin/sh", "/phoenix-lab-serve"]\n'
                            'LABEL org.phoenix.lab-standin="1"\n')
                run(["docker", "build", "-q", "-t", tag, ctx], timeout=300,
                    env=dict(os.environ, DOCKER_BUILDKIT="0"))
        run(["docker", "save", "-o", tar + ".tmp", *tags.values()], timeout=300)
        os.replace(tar + ".tmp", tar)
    finally:
        run(["docker", "rmi", *tags.values()], check=False, timeout=120)
    return tar, tags


# --- up / down / status --------------------------------------------------------------------------

def check_prereqs():
    if os.geteuid() != 0:
        raise LabError("the lab needs root: network namespaces, LXC containers, mounts")
    for prog in ("ip", "nsenter", "lxc-start", "lxc-attach", "dnsmasq", "docker"):
        if not shutil.which(prog, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"):
            raise LabError(f"{prog} is not installed: run scripts/install-deps.sh")


INOTIFY_INSTANCES = "/proc/sys/fs/inotify/max_user_instances"


def ensure_inotify(guests):
    """Each guest's systemd takes inotify instances of root's, 128 by default on Debian: past
    about 15 guests, systemd in the next one cannot start its units and the guest never comes
    up. Raises the limit (a kernel setting of this machine's, as LXD asks of hosts) when the
    estate needs more, and says so."""
    need = 64 + 8 * guests
    try:
        with open(INOTIFY_INSTANCES) as f:
            have = int(f.read().strip())
    except (OSError, ValueError):
        return
    if have >= need:
        return
    with open(INOTIFY_INSTANCES, "w") as f:
        f.write(f"{need}\n")
    say(f"fs.inotify.max_user_instances raised from {have} to {need} for {guests} guests "
        f"(sysctl -w fs.inotify.max_user_instances={have} puts it back)")


def count_guests(etc):
    with open(os.path.join(etc, "phoenix_lxc_configs.json")) as f:
        n = len(json.load(f).get("lxc_configs", {}))
    with open(os.path.join(etc, "phoenix_vm_configs.json")) as f:
        return n + sum(1 for v in json.load(f).get("vms", []) if not v.get("is_template"))


def start_daemon(argv, log, state):
    with open(log, "a") as out:
        p = subprocess.Popen(in_netns(state, argv), stdin=subprocess.DEVNULL, stdout=out,
                             stderr=out, start_new_session=True, cwd="/")
    return p.pid


def start_dnsmasq(state):
    d = state["dir"]
    conf_dir = os.path.join(d, "node", "etc", "dnsmasq.d")
    os.makedirs(conf_dir, exist_ok=True)
    addr = state["node_address"].split("/")[0]
    pid_file = os.path.join(d, "dnsmasq.pid")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(pid_file)
    argv = ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
            f"--conf-dir={conf_dir},*.conf", f"--listen-address={addr}", "--bind-interfaces",
            "--port=53", "--no-resolv", "--no-hosts", "--user=root", "--group=root",
            f"--pid-file={pid_file}", f"--log-facility={os.path.join(d, 'dnsmasq.log')}"]
    test = run(in_netns(state, argv[:-2] + ["--test"]), check=False)
    if test.returncode != 0:
        raise LabError(f"dnsmasq --test: {(test.stderr or test.stdout).strip()}")
    pid = start_daemon(argv, os.path.join(d, "dnsmasq.out"), state)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not alive(pid):
            raise LabError(f"dnsmasq exited at once: {tail(os.path.join(d, 'dnsmasq.out'))}")
        if os.path.exists(pid_file):
            return pid
        time.sleep(0.05)
    raise LabError("dnsmasq did not start within 10s")


def tail(path, n=20):
    with contextlib.suppress(OSError):
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:]).strip()
    return ""


def start_pve_sim(state, pve_sim, schema):
    d = state["dir"]
    sim_dir = os.path.join(d, "node")
    os.makedirs(sim_dir, exist_ok=True)
    tokens = os.path.join(d, "secrets", "pve-tokens")
    secret_file = os.path.join(d, "secrets", "proxmox_token")
    if not os.path.exists(secret_file):
        write_secret(secret_file, "lab-" + secrets.token_hex(16))
    with open(secret_file) as f:
        secret = f.read().strip()
    with open(tokens + ".tmp", "w") as f:
        os.chmod(tokens + ".tmp", 0o600)
        f.write(f"{TOKEN_ID}={secret}\n")
    os.replace(tokens + ".tmp", tokens)
    me = [sys.executable, os.path.abspath(__file__)]
    hook = os.path.join(d, "bin", "guest-hook")
    agent = os.path.join(d, "bin", "agent-exec")
    for path, verb in ((hook, "hook"), (agent, "agent")):
        with open(path, "w") as f:
            f.write(f"#!/bin/sh\nexec {me[0]} {me[1]} {verb} --dir {d} \"$@\"\n")
        os.chmod(path, 0o755)
    log = os.path.join(d, "pve-sim.log")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(log)
    pid = start_daemon([pve_sim, "--listen", "127.0.0.1", "--port", str(PVE_PORT),
                        "--schema", schema, "--state-dir", sim_dir, "--token-file", tokens,
                        "--node", state["node_name"], "--task-duration", "100",
                        "--agent-delay", "500", "--guest-hook", hook, "--agent-exec", agent],
                       log, state)
    fp_file = os.path.join(sim_dir, "pve-ssl.fp")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not alive(pid):
            raise LabError(f"pve-sim exited at once:\n{tail(log)}")
        if os.path.exists(fp_file) and f":{PVE_PORT}" in tail(log):
            with open(fp_file) as f:
                return pid, f.read().strip()
        time.sleep(0.1)
    raise LabError(f"pve-sim did not start within 30s:\n{tail(log)}")


def write_pct(directory):
    bin_dir = os.path.join(directory, "bin")
    path = os.path.join(bin_dir, "pct")
    with open(path, "w") as f:
        f.write(f"#!/bin/sh\n# `pct` on the lab's node: lxc-attach into the container.\n"
                f"exec {sys.executable} {os.path.abspath(__file__)} pct --dir {directory} "
                "\"$@\"\n")
    os.chmod(path, 0o755)


def cmd_up(args):
    check_prereqs()
    d = lab_dir(args)
    state = load_state(d)
    if state and alive(state.get("pve_sim_pid")) and os.path.exists(netns_path(state)):
        say(f"already up in {d} (phoenix lab down first to start afresh)")
        print_next(state)
        return 0
    if state:
        say(f"a lab that is not running was left in {d}: removing it first")
        down(d, state)
    os.makedirs(d, mode=0o700, exist_ok=True)
    for sub in ("bin", "secrets", "guests", "state", "node"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    os.chmod(os.path.join(d, "secrets"), 0o700)
    name = args.name or "lab"
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,20}", name):
        raise LabError(f"--name {name!r}: use up to 21 lower-case letters, digits and dashes")
    state = {"dir": d, "name": name, "netns": f"phx-{name}",
             "estate_source": os.path.abspath(args.estate or
                                              os.path.join(REPO, "examples", "estate"))}
    # Saved before anything is made, so that down() finds everything after a failed up.
    save_json(os.path.join(d, "lab.json"), state)
    try:
        phoenix = os.path.abspath(args.phoenix or shutil.which("phoenix") or "")
        if not os.access(phoenix, os.X_OK):
            raise LabError("the phoenix binary was not found: pass --phoenix")
        state["phoenix"] = phoenix
        pve_sim = find_pve_sim(args.pve_sim)
        schema = find_schema(args.schema)
        say("the tools: the guest root filesystem, step-ca and step, Traefik")
        rootfs = cached_tool("guest-rootfs.sh", "PHOENIX_GUEST_ROOTFS")
        step_ca = cached_tool("build-step-ca.sh", "PHOENIX_STEP_CA")
        traefik = cached_tool("build-traefik.sh", "PHOENIX_TRAEFIK")
        tools = {"step_ca": step_ca, "step": os.path.join(os.path.dirname(step_ca), "step"),
                 "traefik": traefik}
        state.update(rootfs=rootfs, tools=tools)

        # The estate first with a placeholder pin, for the node's address and name.
        etc, node, left_out, added = make_estate(d, state["estate_source"], tools, "0" * 64)
        state.update(node_address=node["address"], node_name=node["name"], left_out=left_out)
        for ctid, why in left_out.items():
            say(f"LXC {ctid} is left out of the lab's estate: {why}")
        for vmid, feature in added.items():
            say(f"VM {vmid}: {feature} added (its engine must answer on TCP for the swarm join)")
        ensure_inotify(count_guests(etc))

        say(f"the network namespace {state['netns']}, bridge {BRIDGE} {node['address']}")
        run(["ip", "netns", "add", state["netns"]])
        state["netns_made"] = True
        save_json(os.path.join(d, "lab.json"), state)
        for argv in (["ip", "link", "set", "lo", "up"],
                     ["ip", "link", "add", BRIDGE, "type", "bridge"],
                     ["ip", "addr", "add", node["address"], "dev", BRIDGE],
                     ["ip", "link", "set", BRIDGE, "up"]):
            run(in_netns(state, argv))

        write_pct(d)
        say("pve-sim on https://127.0.0.1:8006 in the lab's namespace")
        state["pve_sim_pid"], fingerprint = start_pve_sim(state, pve_sim, schema)
        save_json(os.path.join(d, "lab.json"), state)
        etc, node, left_out, _ = make_estate(d, state["estate_source"], tools, fingerprint)
        state["estate"] = etc

        say(f"dnsmasq on {node['address'].split('/')[0]}:53")
        state["dnsmasq_pid"] = start_dnsmasq(state)
        save_json(os.path.join(d, "lab.json"), state)

        say("the stacks' stand-in images (no registry here)")
        images, ports = stack_images(phoenix, etc, d)
        tar, tags = build_standins(d, images, ports)
        state["images"] = {"ports": ports, "tar": tar, "tags": tags}
        save_json(os.path.join(d, "lab.json"), state)
    except BaseException:
        say("up failed: removing what it made")
        with contextlib.suppress(Exception):
            down(d, state)
        raise
    say(f"up in {d}")
    print_next(state)
    return 0


def print_next(state):
    print(f"the lab is up in {state['dir']}; its estate is {state.get('estate')}\n"
          f"converge it:  phoenix lab run sync all\n"
          f"look at it:   phoenix lab status     remove it: phoenix lab down")


def registry(directory):
    path = os.path.join(directory, "guests", "registry.json")
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


def save_registry(directory, reg):
    save_json(os.path.join(directory, "guests", "registry.json"), reg)


def down(d, state):
    errors = []
    if state and state.get("netns_made") and os.path.exists(netns_path(state)):
        # The containers' monitors listen in the lab's namespace: stop them from there.
        r = run(in_netns(state, [sys.executable, os.path.abspath(__file__), "stop-guests",
                                 "--dir", d]), check=False, timeout=600)
        if r.returncode != 0:
            errors.append(f"stopping the guests: {r.stderr.strip()}")
    for key in ("pve_sim_pid", "dnsmasq_pid"):
        stop_group((state or {}).get(key))
    if state and state.get("netns_made"):
        r = run(["ip", "netns", "del", state["netns"]], check=False)
        if r.returncode != 0 and os.path.exists(netns_path(state)):
            errors.append(f"ip netns del {state['netns']}: {r.stderr.strip()}")
    if errors:
        raise LabError("; ".join(errors))
    r = run(["rm", "-rf", "--one-file-system", d], check=False, timeout=300)
    if r.returncode != 0:
        raise LabError(f"removing {d}: {r.stderr.strip()}")


def cmd_down(args):
    d = lab_dir(args)
    state = load_state(d)
    if state is None and not os.path.exists(d):
        say(f"no lab in {d}")
        return 0
    if os.geteuid() != 0:
        raise LabError("the lab needs root")
    down(d, state)
    say(f"down: {d} removed")
    return 0


def cmd_stop_guests(args):
    d = lab_dir(args)
    errors = []
    base = os.path.join(d, "guests")
    for entry in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        if os.path.isfile(os.path.join(base, entry, "state.json")):
            try:
                lxc_guest.load(os.path.join(base, entry)).stop()
            except lxc_guest.GuestError as e:
                errors.append(str(e))
    if errors:
        raise LabError("; ".join(errors))
    return 0


def cmd_status(args):
    d = lab_dir(args)
    state = load_state(d)
    doc = {"dir": d, "up": False}
    if state:
        sim = alive(state.get("pve_sim_pid"))
        dns = alive(state.get("dnsmasq_pid"))
        net = os.path.exists(netns_path(state))
        guests = []
        for vmid, g in sorted(registry(d).items(), key=lambda kv: int(kv[0])):
            lxc_state = None
            if net:
                r = run(in_netns(state, ["lxc-info", "-P", os.path.join(g["dir"], "lxc"),
                                         "-n", g["name"], "-sH"]), check=False)
                lxc_state = r.stdout.strip() or None
            guests.append({"vmid": int(vmid), "type": g["type"], "hostname": g["hostname"],
                           "ip": g.get("ip"), "container": g["name"], "state": lxc_state})
        doc = {"dir": d, "up": sim and dns and net, "netns": state["netns"],
               "estate": state.get("estate"), "pve_sim": {"running": sim,
                                                          "url": f"https://127.0.0.1:{PVE_PORT}"},
               "dnsmasq": {"running": dns, "address": state.get("node_address")},
               "guests": guests, "left_out": state.get("left_out", {})}
    if args.output == "json":
        print(json.dumps(doc, indent=1))
    elif not state:
        print(f"no lab in {d} (phoenix lab up)")
    else:
        print(f"lab {d}: {'up' if doc['up'] else 'NOT fully up'} (namespace {doc['netns']})")
        print(f"  pve-sim  {'running' if doc['pve_sim']['running'] else 'stopped'}  "
              f"{doc['pve_sim']['url']}")
        print(f"  dnsmasq  {'running' if doc['dnsmasq']['running'] else 'stopped'}  "
              f"{doc['dnsmasq']['address']}")
        for g in doc["guests"]:
            print(f"  {g['type']:4} {g['vmid']:<5} {g['hostname']:<20} {g['ip'] or '-':<16} "
                  f"{(g['state'] or 'gone').lower()}")
        if not doc["guests"]:
            print("  no guests yet (phoenix lab run sync all)")
    return 0 if doc["up"] or not state else 1


def cmd_run(args):
    d = lab_dir(args)
    state = load_state(d)
    if not state or not state.get("estate"):
        raise LabError(f"no lab in {d}: phoenix lab up first")
    rest = list(args.rest)
    if rest and rest[0] == "--":
        rest = rest[1:]
    env = dict(os.environ, PATH=os.path.join(d, "bin") + ":" + os.environ.get("PATH", ""),
               PHOENIX_LAB_DIR=d)
    argv = in_netns(state, [state["phoenix"], "-C", state["estate"], "--state-dir",
                            os.path.join(d, "state"), *rest])
    if not any(rest[i:i + 2] == ["sync", "all"] for i in range(len(rest))):
        os.execvpe(argv[0], argv, env)
    rc = subprocess.run(argv, env=env).returncode
    if rc == 0:
        overlay_route(state)
    return rc


# --- the route into the Swarm's overlay network ---------------------------------------------------

# Run in the manager VM as `sh -c OVERLAY_ROUTE sh NETWORK LAN IMAGE` (fixed text, the values as
# arguments). A container of the lab's own on the overlay network (an endpoint every swarm node
# knows), a veth from the VM into it, and NAT there: the LAN reaches the overlay's task addresses
# through the VM, and the tasks answer the container. Made afresh each time.
OVERLAY_ROUTE = r"""set -e
net=$1 lan=$2 image=$3 gw=phoenix-lab-overlay-route
subnet=$(docker network inspect "$net" --format '{{(index .IPAM.Config 0).Subnet}}')
docker rm -f "$gw" >/dev/null 2>&1 || true
ip link del phxov0 2>/dev/null || true
docker run -d --name "$gw" --network "$net" --restart unless-stopped \
  --label org.phoenix.lab=overlay-route "$image" >/dev/null
pid=$(docker inspect -f '{{.State.Pid}}' "$gw")
ovip=$(docker inspect -f "{{(index .NetworkSettings.Networks \"$net\").IPAddress}}" "$gw")
ip link add phxov0 type veth peer name phxov1
ip link set phxov1 netns "$pid"
ip addr add 169.254.77.1/30 dev phxov0
ip link set phxov0 up
in="nsenter -t $pid -n"
$in ip addr add 169.254.77.2/30 dev phxov1
$in ip link set phxov1 up
$in sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward'
ovif=$($in ip -o -4 addr show | awk -v ip="$ovip" '$4 ~ "^" ip "/" {print $2}')
$in iptables -t nat -A POSTROUTING -o "$ovif" -j MASQUERADE
$in ip route replace "$lan" via 169.254.77.1
ip route replace "$subnet" via 169.254.77.2
for dir in -i -o; do
  iptables -C DOCKER-USER $dir phxov0 -j ACCEPT 2>/dev/null ||
    iptables -I DOCKER-USER $dir phxov0 -j ACCEPT
done
echo "$subnet"
"""


def overlay_route(state):
    """The lab's route from the Traefik guest into the Swarm's traefik-public overlay network, so
    that Traefik (in an LXC, outside the swarm) reaches the task addresses its Swarm provider
    gives it. A production estate needs the same (see README: the lab)."""
    etc = state["estate"]
    with open(os.path.join(etc, "phoenix_vm_configs.json")) as f:
        vms = json.load(f).get("vms", [])
    with open(os.path.join(etc, "phoenix_lxc_configs.json")) as f:
        lxcs = json.load(f).get("lxc_configs", {})
    manager = next((v for v in vms if v.get("swarm_role") == "manager"), None)
    traefik = next((k for k, c in lxcs.items() if "traefik" in c.get("features", [])), None)
    if manager is None or traefik is None:
        return
    manager_ip = manager.get("network_config", {}).get("ip", "").split("/")[0]
    lan = state["node_address"]
    iface = ipaddress.ip_interface(lan)
    images = state.get("images", {}).get("tags", {})
    if not manager_ip or not images:
        return
    d = state["dir"]
    pct = os.path.join(d, "bin", "pct")
    r = run(in_netns(state, [pct, "exec", str(manager["vmid"]), "--", "sh", "-c", OVERLAY_ROUTE,
                             "sh", "traefik-public", str(iface.network), sorted(images)[0]]),
            timeout=120)
    subnet = r.stdout.strip().splitlines()[-1]
    run(in_netns(state, [pct, "exec", traefik, "--", "ip", "route", "replace", subnet, "via",
                         manager_ip]), timeout=60)
    say(f"the Traefik guest {traefik} reaches the overlay {subnet} through VM {manager['vmid']}")


def cmd_overlay_route(args):
    d = lab_dir(args)
    state = load_state(d)
    if not state or not state.get("estate"):
        raise LabError(f"no lab in {d}: phoenix lab up first")
    overlay_route(state)
    return 0


# --- what pve-sim and Phoenix call ---------------------------------------------------------------

def parse_net(guest):
    """(ip/cidr, gateway, hwaddr) of the guest's first network from its Proxmox config."""
    cfg = guest.get("config", {})
    text = cfg.get("net0", "") if guest.get("type") == "lxc" else cfg.get("ipconfig0", "")
    fields = dict(p.split("=", 1) for p in text.split(",") if "=" in p)
    hw = fields.get("hwaddr")
    if guest.get("type") != "lxc":
        m = re.search(r"=([0-9A-Fa-f:]{17})", cfg.get("net0", ""))
        hw = m.group(1) if m else None
    ip = fields.get("ip")
    return (ip if ip and ip != "dhcp" else None), fields.get("gw"), hw


def attach(state, guest, ip, hw):
    """A veth from the lab's bridge into the guest, as eth0 with the guest's address."""
    vmid = guest.state["vmid"]
    outside, inside = f"vh{vmid}", f"vg{vmid}"
    run(["ip", "link", "del", outside], check=False)
    run(["ip", "link", "add", outside, "type", "veth", "peer", "name", inside])
    run(["ip", "link", "set", outside, "master", BRIDGE, "up"])
    run(["ip", "link", "set", inside, "netns", str(guest.pid())])
    steps = [["ip", "link", "set", inside, "name", "eth0"]]
    if hw:
        steps.append(["ip", "link", "set", "eth0", "address", hw])
    if ip:
        steps.append(["ip", "addr", "add", ip, "dev", "eth0"])
    steps.append(["ip", "link", "set", "eth0", "up"])
    for argv in steps:
        r = guest.run(argv)
        if r.returncode != 0:
            raise LabError(f"{argv} in {guest.name}: {r.stderr.strip()}")


def personalise(state, guest):
    resolv = os.path.join(guest.rootfs_path(), "etc", "resolv.conf")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(resolv)
    with open(resolv, "w") as f:
        f.write(f"nameserver {state['node_address'].split('/')[0]}\n")


def preload_docker(state, guest):
    """A VM of the lab comes with Docker's package installed and the stacks' images loaded, as a
    prepared cloud image would: nothing can be pulled here."""
    r = guest.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "docker.io"],
                  env={"DEBIAN_FRONTEND": "noninteractive"}, timeout=600)
    if r.returncode != 0:
        raise LabError(f"installing docker.io in {guest.name}: {r.stderr.strip()[-1500:]}")
    guest.run(["systemctl", "start", "docker"], timeout=120)
    tar = state.get("images", {}).get("tar")
    if tar:
        dest = os.path.join(guest.rootfs_path(), "root", "lab-images.tar")
        shutil.copyfile(tar, dest)
        deadline = time.monotonic() + 60
        while guest.run(["docker", "version"], timeout=30).returncode != 0:
            if time.monotonic() > deadline:
                raise LabError(f"Docker's engine in {guest.name} did not answer within 60s")
            time.sleep(0.5)
        r = guest.run(["docker", "load", "-i", "/root/lab-images.tar"], timeout=600)
        if r.returncode != 0:
            raise LabError(f"docker load in {guest.name}: {r.stderr.strip()}")
        os.unlink(dest)
        for image, tag in state["images"]["tags"].items():
            for argv in (["docker", "tag", tag, image], ["docker", "rmi", tag]):
                r = guest.run(argv, timeout=120)
                if r.returncode != 0:
                    raise LabError(f"{' '.join(argv)} in {guest.name}: {r.stderr.strip()}")


def cmd_hook(args):
    d = lab_dir(args)
    state = load_state(d)
    guest_doc = json.load(sys.stdin)
    vmid = str(args.vmid)
    kind = guest_doc.get("type", "lxc")
    with locked(d, "guests.lock"):
        reg = registry(d)
    entry = reg.get(vmid)
    if args.action == "start":
        ip, _gw, hw = parse_net(guest_doc)
        cfg = guest_doc.get("config", {})
        hostname = cfg.get("hostname") if kind == "lxc" else cfg.get("name")
        hostname = hostname or f"guest{vmid}"
        if entry and os.path.isfile(os.path.join(entry["dir"], "state.json")):
            guest = lxc_guest.load(entry["dir"])
            guest._boot_deadline_s = 180
            if guest.lxc_state() != "RUNNING":
                guest._start_container()
                guest._wait_booted()
        else:
            guest = lxc_guest.Guest(state["rootfs"], f"lab{vmid}",
                                    base_dir=os.path.join(d, "guests"), docker=kind != "lxc",
                                    hostname=hostname, boot_deadline_s=180)
            guest.state["vmid"] = int(vmid)
            guest.start()
            guest.detach()
            personalise(state, guest)
            with locked(d, "guests.lock"):
                reg = registry(d)
                reg[vmid] = {"dir": guest.dir, "name": guest.name, "type": kind,
                             "hostname": hostname, "ip": ip}
                save_registry(d, reg)
        guest.state["vmid"] = int(vmid)
        attach(state, guest, ip, hw)
        if kind != "lxc" and not (entry and entry.get("docker_ready")):
            preload_docker(state, guest)
            with locked(d, "guests.lock"):
                reg = registry(d)
                reg[vmid]["docker_ready"] = True
                save_registry(d, reg)
        return 0
    if entry is None:
        return 0  # nothing backs it (a guest made before the lab's hook)
    guest = lxc_guest.load(entry["dir"])
    if args.action == "stop":
        if guest.lxc_state() not in (None, "STOPPED"):
            run(["lxc-stop", "-P", guest.lxcpath, "-n", guest.name, "-k"], timeout=60)
        return 0
    guest.stop()
    with locked(d, "guests.lock"):
        reg = registry(d)
        reg.pop(vmid, None)
        save_registry(d, reg)
    return 0


def guest_prefix(d, vmid, what):
    entry = registry(d).get(str(vmid))
    if entry is None:
        raise LabError(f"Configuration file 'nodes/pve/{what}/{vmid}.conf' does not exist")
    guest = lxc_guest.load(entry["dir"])
    return guest.argv_prefix()


def cmd_pct(args):
    d = lab_dir(args)
    rest = args.rest
    if len(rest) < 3 or rest[0] != "exec" or "--" not in rest:
        raise LabError("the lab's pct does `pct exec VMID -- ARGV...` only")
    vmid = rest[1]
    argv = rest[rest.index("--") + 1:]
    prefix = guest_prefix(d, vmid, "lxc")
    os.execvp(prefix[0], prefix + argv)


def cmd_agent(args):
    d = lab_dir(args)
    prefix = guest_prefix(d, args.vmid, "qemu-server")
    os.execvp(prefix[0], prefix + args.rest)


def cmd_dns_reload(args):
    d = lab_dir(args)
    state = load_state(d)
    with locked(d):
        stop_group(state.get("dnsmasq_pid"))
        state["dnsmasq_pid"] = start_dnsmasq(state)
        save_json(os.path.join(d, "lab.json"), state)
    return 0


FAULT_KEYS = ("fail_rate", "drop_rate", "lock_rate", "task_fail_rate", "latency_ms")


def sim_api(state, method, path, params=None):
    """One request to the lab's pve-sim (in its namespace, its certificate verified, the lab's
    token); the answer's data."""
    d = state["dir"]
    with open(os.path.join(d, "secrets", "proxmox_token")) as f:
        secret = f.read().strip()
    argv = ["curl", "-sS", "--fail-with-body", "--cacert", os.path.join(d, "node", "pve-ssl.pem"),
            "-X", method, "-H", "@-"]
    for k, v in (params or {}).items():
        argv += ["--data-urlencode", f"{k}={v}"]
    # The token goes on standard input, not in an argument that `ps` shows.
    r = run(in_netns(state, argv + [f"https://127.0.0.1:{PVE_PORT}/api2/json{path}"]),
            check=False, timeout=30, input=f"Authorization: PVEAPIToken={TOKEN_ID}={secret}\n")
    if r.returncode != 0:
        raise LabError(f"pve-sim {method} {path}: {(r.stdout + r.stderr).strip()}")
    return json.loads(r.stdout)["data"]


def cmd_faults(args):
    d = lab_dir(args)
    state = load_state(d)
    if not state or not alive(state.get("pve_sim_pid")):
        raise LabError(f"no lab running in {d}: phoenix lab up first")
    params = {k: 0 for k in FAULT_KEYS} if args.off else {}
    params.update({k: getattr(args, k) for k in FAULT_KEYS if getattr(args, k) is not None})
    doc = sim_api(state, "PUT" if params else "GET", "/_sim/faults", params)
    print(json.dumps(doc) if args.output == "json" else
          "pve-sim faults: " + ", ".join(f"{k} {doc[k]}" for k in FAULT_KEYS))
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(prog="phoenix lab", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the lab")
    up.add_argument("--estate", help="the estate to copy (default examples/estate)")
    up.add_argument("--name", help="the lab's name (its namespace is phx-NAME; default lab)")
    up.add_argument("--phoenix", help="the phoenix binary")
    up.add_argument("--pve-sim", help="the pve-sim binary")
    up.add_argument("--schema", help="specs/pve-apidata.json")
    sub.add_parser("down", help="stop and remove the lab")
    st = sub.add_parser("status", help="what runs")
    st.add_argument("--output", choices=("text", "json"), default="text")
    rn = sub.add_parser("run", help="phoenix on the lab's estate, in its namespace")
    rn.add_argument("rest", nargs=argparse.REMAINDER)
    hk = sub.add_parser("hook")
    hk.add_argument("action", choices=("start", "stop", "destroy"))
    hk.add_argument("vmid", type=int)
    ag = sub.add_parser("agent")
    ag.add_argument("vmid", type=int)
    ag.add_argument("rest", nargs=argparse.REMAINDER)
    pc = sub.add_parser("pct")
    pc.add_argument("rest", nargs=argparse.REMAINDER)
    sub.add_parser("dns-reload")
    sub.add_parser("stop-guests")
    fl = sub.add_parser("faults", help="pve-sim's injected faults: show them, or change them "
                                       "while the lab runs")
    for k in FAULT_KEYS:
        fl.add_argument("--" + k.replace("_", "-"), dest=k, type=float,
                        help="milliseconds added to each request" if k == "latency_ms" else
                        "fraction of " + {"fail_rate": "requests answered 500/503",
                                          "drop_rate": "requests left unanswered",
                                          "lock_rate": "guest calls finding the guest locked",
                                          "task_fail_rate": "tasks that fail"}[k])
    fl.add_argument("--off", action="store_true", help="every rate 0 (then the options given)")
    fl.add_argument("--output", choices=("text", "json"), default="text")
    sub.add_parser("overlay-route", help="route the Traefik guest into the Swarm's overlay "
                                         "network (done after each `run sync all`)")
    for sp in sub.choices.values():
        sp.add_argument("--dir", help=f"the lab's directory (default $PHOENIX_LAB_DIR or "
                                      f"{DEFAULT_DIR})")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["run"], ["pct"], ["agent"]):
        # Everything after `run|pct|agent [--dir D]` is the command's, options included.
        rest, directory = argv[1:], None
        if rest[:1] == ["--dir"] and len(rest) > 1:
            directory, rest = rest[1], rest[2:]
        args = argparse.Namespace(command=argv[0], dir=directory, rest=rest)
        if argv[0] == "agent":
            if not rest or not rest[0].isdigit():
                p.error("agent VMID ARGV...")
            args.vmid, args.rest = int(rest[0]), rest[1:]
    else:
        args = p.parse_args(argv)
    handlers = {"up": cmd_up, "down": cmd_down, "status": cmd_status, "run": cmd_run,
                "hook": cmd_hook, "agent": cmd_agent, "pct": cmd_pct,
                "dns-reload": cmd_dns_reload, "stop-guests": cmd_stop_guests,
                "overlay-route": cmd_overlay_route, "faults": cmd_faults}
    try:
        return handlers[args.command](args)
    except (LabError, lxc_guest.GuestError) as e:
        print(f"phoenix lab: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
