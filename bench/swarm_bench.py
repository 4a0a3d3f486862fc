#!/usr/bin/python3
"""swarm_bench: Phoenix's stack deployment against `docker stack deploy` on the local engine.

For each size N it writes a compose file of N services (the test image sleeping, a few
environment variables, a deploy label, `update_config.failure_action: rollback` so that both
tools produce the same service specs) and, R times, with uniquely named stacks, measures:

  phoenix deploy   `phoenix sync stack` of a new stack, until it returns (it waits until every
                   task runs)
  docker deploy    `docker stack deploy` of the same file, plus the time until every service
                   shows 1/1 replicas in `docker service ls` (polled), so that both figures mean
                   "deployed and running"
  phoenix no-op    a second `phoenix sync stack`, with its engine request counts
  docker no-op     a second `docker stack deploy`; it does not wait for anything

Each stack is removed (services, then networks, then configs) before the next is deployed, so
that every deployment starts on an engine without the other's containers, and again on the way
out, even when something fails. It prints figures and never asserts on them.

Usage: swarm_bench.py [--phoenix PATH] [--sizes 1,10,50] [--runs 3] [--keep]
Needs what scripts/docker-env.sh prepares: the engine on /var/run/docker.sock as a swarm
manager, the traefik-public network and the image phoenix-test/busybox:1 (nothing is pulled).
"""
import argparse
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

SOCKET = "unix:///var/run/docker.sock"
IMAGE = "phoenix-test/busybox:1"
NS_LABEL = "com.docker.stack.namespace"
# How long one deployment may take before the run is abandoned (not a figure: a failure).
DEPLOY_DEADLINE_S = 600
# How long removing a stack may take: its tasks stop, then its networks can go.
REMOVE_DEADLINE_S = 120
# The docker side's convergence poll; Phoenix polls its services every 500 ms.
DOCKER_POLL_S = 0.1


class BenchError(Exception):
    pass


def run(argv, *, timeout=DEPLOY_DEADLINE_S + 60):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


def docker(*args, timeout=120):
    return run(["docker", "-H", SOCKET, *args], timeout=timeout)


def checked(r, what):
    if r.returncode != 0:
        raise BenchError(f"{what} exited {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}")
    return r


def timed(argv):
    start = time.monotonic()
    r = run(argv)
    return r, time.monotonic() - start


def compose_file(n):
    """N sleeping services; the same text is given to both tools."""
    out = ["services:"]
    for i in range(n):
        out += [f"  s{i}:",
                f"    image: {IMAGE}",
                '    command: ["sleep", "100000"]',
                "    environment:",
                "      MODE: bench",
                f'      SERVICE_INDEX: "{i}"',
                f'      STACK_SIZE: "{n}"',
                "    deploy:",
                "      labels:",
                f'        org.phoenix.bench.service: "s{i}"',
                "      update_config:",
                "        failure_action: rollback"]
    return "\n".join(out) + "\n"


class Estate:
    """A throw-away estate: one manager VM on the local engine and the stacks being measured."""

    def __init__(self, root):
        self.root = root
        self.etc = os.path.join(root, "etc")
        self.stacks = os.path.join(root, "stacks")
        os.makedirs(self.etc)
        os.makedirs(self.stacks)
        self.vms = [{"vmid": 1001, "name": "mgr", "swarm_role": "manager",
                     "network_config": {"ip": "192.0.2.2/24", "gw": "192.0.2.1"},
                     "docker_api": {"url": SOCKET},
                     "docker_stacks": []}]
        self.write()

    def write(self):
        with open(os.path.join(self.etc, "phoenix_hypervisor_config.json"), "w") as f:
            json.dump({"version": "1", "domain_name": "bench.lan"}, f)
        with open(os.path.join(self.etc, "phoenix_lxc_configs.json"), "w") as f:
            json.dump({"lxc_configs": {}}, f)
        with open(os.path.join(self.etc, "phoenix_vm_configs.json"), "w") as f:
            json.dump({"vms": self.vms}, f, indent=1)

    def add_stack(self, name, compose):
        d = os.path.join(self.stacks, name)
        os.makedirs(d)
        with open(os.path.join(d, "docker-compose.yml"), "w") as f:
            f.write(compose)
        manifest = {"description": name,
                    "environments": {"production": {"variables": [], "services": {}}}}
        with open(os.path.join(d, "phoenix.json"), "w") as f:
            json.dump(manifest, f)
        self.vms[0]["docker_stacks"].append(name)
        self.write()
        return os.path.join(d, "docker-compose.yml")

    def drop_stack(self, name):
        """Keeps the estate at one stack, so that Phoenix's load time does not grow per run."""
        if name in self.vms[0]["docker_stacks"]:
            self.vms[0]["docker_stacks"].remove(name)
            self.write()
        shutil.rmtree(os.path.join(self.stacks, name), ignore_errors=True)


def stack_ids(kind, ns):
    r = docker(kind, "ls", "-q", "--filter", f"label={NS_LABEL}={ns}")
    return r.stdout.split() if r.returncode == 0 else []


def remove_stack(ns):
    """Services, then networks (once the tasks have let go of them), then configs; waits until
    the stack's containers are gone, so that the next deployment starts on a quiet engine.
    Returns what could not be removed."""
    left = []
    ids = stack_ids("service", ns)
    if ids:
        docker("service", "rm", *ids)
    end = time.monotonic() + REMOVE_DEADLINE_S
    while True:
        nets = stack_ids("network", ns)
        if not nets or docker("network", "rm", *nets).returncode == 0:
            break
        if time.monotonic() >= end:
            left.append(f"networks {' '.join(nets)}")
            break
        time.sleep(0.5)
    for kind in ("config", "secret"):
        ids = stack_ids(kind, ns)
        if ids and docker(kind, "rm", *ids).returncode != 0:
            left.append(f"{kind}s {' '.join(ids)}")
    while True:
        r = docker("ps", "-aq", "--filter", f"label={NS_LABEL}={ns}")
        if r.returncode != 0 or not r.stdout.split():
            break
        if time.monotonic() >= end:
            left.append(f"containers {' '.join(r.stdout.split())}")
            break
        time.sleep(0.5)
    if stack_ids("service", ns):
        left.append("services")
    return left


def docker_converged(ns, n):
    r = docker("service", "ls", "--filter", f"label={NS_LABEL}={ns}", "--format", "{{.Replicas}}")
    lines = r.stdout.split() if r.returncode == 0 else []
    return len(lines) == n and all(line == "1/1" for line in lines)


def measure_phoenix(args, estate, name, compose):
    estate.add_stack(name, compose)
    sync = [args.phoenix, "-C", estate.etc, "--output", "json", "sync", "stack", name,
            "--timeout", str(DEPLOY_DEADLINE_S)]
    r, deploy_s = timed(sync)
    first = json.loads(checked(r, f"phoenix sync stack {name}").stdout)
    if not first.get("converged"):
        raise BenchError(f"phoenix sync stack {name} did not converge: {r.stdout}")
    r, noop_s = timed(sync)
    again = json.loads(checked(r, f"phoenix sync stack {name} (again)").stdout)
    if again.get("changes") != 0:
        raise BenchError(f"the second phoenix sync stack {name} changed something: {r.stdout}")
    return {"deploy": deploy_s, "noop": noop_s,
            "total": again["requests"]["total"], "mutating": again["requests"]["mutating"]}


def measure_docker(compose_path, name, n):
    deploy = ["docker", "-H", SOCKET, "stack", "deploy", "--resolve-image", "never",
              "-c", compose_path, name]
    start = time.monotonic()
    checked(run(deploy), f"docker stack deploy {name}")
    end = start + DEPLOY_DEADLINE_S
    while not docker_converged(name, n):
        if time.monotonic() >= end:
            raise BenchError(f"docker stack {name}: not all {n} services 1/1 after "
                             f"{DEPLOY_DEADLINE_S} s")
        time.sleep(DOCKER_POLL_S)
    deploy_s = time.monotonic() - start
    before = service_versions(name)
    r, noop_s = timed(deploy)
    checked(r, f"docker stack deploy {name} (again)")
    after = service_versions(name)
    rewritten = sum(1 for s, v in after.items() if before.get(s) != v)
    return {"deploy": deploy_s, "noop": noop_s, "rewritten": rewritten}


def service_versions(ns):
    ids = stack_ids("service", ns)
    if not ids:
        return {}
    r = docker("service", "inspect", "--format", "{{.Spec.Name}} {{.Version.Index}}", *ids)
    return dict(line.split() for line in r.stdout.splitlines() if line.strip())


def prerequisites(phoenix):
    if not os.access(phoenix, os.X_OK):
        return f"{phoenix} is not an executable (scripts/bench.sh builds it)"
    if shutil.which("docker") is None:
        return "the docker CLI is not installed (scripts/install-deps.sh installs docker.io)"
    r = docker("info", "--format", "{{json .Swarm}}")
    if r.returncode != 0:
        return f"no Docker engine answers on {SOCKET} (scripts/docker-env.sh starts it)"
    info = json.loads(r.stdout or "{}")
    if info.get("LocalNodeState") != "active" or not info.get("ControlAvailable"):
        return "the engine is not a swarm manager (scripts/docker-env.sh creates the swarm)"
    if docker("image", "inspect", IMAGE).returncode != 0:
        return f"the image {IMAGE} is missing (scripts/docker-env.sh builds it)"
    return None


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--phoenix", default="build/release/src/phoenix")
    p.add_argument("--sizes", default="1,10,50")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = p.parse_args()
    try:
        args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        p.error(f"--sizes: expected numbers separated by commas, got {args.sizes!r}")
    if not args.sizes or min(args.sizes) < 1 or args.runs < 1:
        p.error("--sizes and --runs must be at least 1")
    args.phoenix = os.path.abspath(args.phoenix)
    return args


def print_table(args, results):
    med = statistics.median
    rows = [("N", "runs", "phoenix", "docker", "ratio", "phoenix", "docker", "phoenix no-op"),
            ("", "", "deploy", "deploy+conv", "p/d", "no-op", "no-op", "requests"),
            ("", "", "med s", "med s", "", "med s", "med s", "total/mutating")]
    for n in args.sizes:
        p, d = results[n]["phoenix"], results[n]["docker"]
        pd, dd = med(x["deploy"] for x in p), med(x["deploy"] for x in d)
        totals = "|".join(map(str, sorted({x["total"] for x in p})))
        mutating = "|".join(map(str, sorted({x["mutating"] for x in p})))
        rows.append((str(n), str(len(p)), f"{pd:.2f}", f"{dd:.2f}", f"{pd / dd:.2f}",
                     f"{med(x['noop'] for x in p):.2f}", f"{med(x['noop'] for x in d):.2f}",
                     f"{totals}/{mutating}"))
    for i, r in enumerate(rows):
        print(f"{r[0]:>4} {r[1]:>4} | {r[2]:>8} {r[3]:>11} {r[4]:>6} | {r[5]:>8} {r[6]:>8} | "
              f"{r[7]:>14}")
        if i == 2:
            print("-" * 77)
    print()
    totals = {n: sorted({x["total"] for x in results[n]["phoenix"]}) for n in args.sizes}
    flat = sorted({t for ts in totals.values() for t in ts})
    if len(args.sizes) == 1:
        print(f"Phoenix no-op requests: {'|'.join(map(str, flat))} at N={args.sizes[0]} "
              "(one size: growth not measured).")
    elif len(flat) == 1:
        print(f"Phoenix no-op requests do not grow with N: {flat[0]} at every size "
              f"({', '.join(map(str, args.sizes))}).")
    else:
        shown = ", ".join(f"N={n}: {'|'.join(map(str, ts))}" for n, ts in totals.items())
        print(f"Phoenix no-op requests grow with N: {shown}.")
    rewritten = ", ".join(f"N={n}: {max(x['rewritten'] for x in results[n]['docker'])}"
                          for n in args.sizes)
    print("docker no-op: `docker stack deploy` returns once its requests are answered and waits "
          "for nothing;\n  services whose version it bumped although nothing changed (max over "
          f"runs): {rewritten}.")
    print(f"docker deploy+conv: deploy, then `docker service ls` polled every "
          f"{int(DOCKER_POLL_S * 1000)} ms until every\n  service is 1/1; phoenix sync stack polls "
          "every 500 ms until every task runs.")


def on_sigterm(signum, frame):
    raise KeyboardInterrupt


def main():
    args = parse_args()
    reason = prerequisites(args.phoenix)
    if reason:
        print(f"swarm_bench: {reason}", file=sys.stderr)
        return 1
    # SIGTERM unwinds like Ctrl-C, so that the stacks are removed on the way out.
    signal.signal(signal.SIGTERM, on_sigterm)
    tmp = tempfile.mkdtemp(prefix="phoenix-swarm-bench-")
    estate = Estate(tmp)
    results = {n: {"phoenix": [], "docker": []} for n in args.sizes}
    failed = False
    try:
        for n in args.sizes:
            compose = compose_file(n)
            for i in range(args.runs):
                tag = secrets.token_hex(3)
                phx, dkr = f"bnp{n}{tag}", f"bnd{n}{tag}"
                dkr_path = os.path.join(tmp, f"{dkr}.yml")
                with open(dkr_path, "w") as f:
                    f.write(compose)
                try:
                    p = measure_phoenix(args, estate, phx, compose)
                    remove_stack(phx)
                    d = measure_docker(dkr_path, dkr, n)
                finally:
                    for ns in (phx, dkr):
                        left = remove_stack(ns)
                        if left:
                            print(f"swarm_bench: warning: stack {ns} not fully removed: "
                                  f"{'; '.join(left)}", file=sys.stderr)
                    estate.drop_stack(phx)
                results[n]["phoenix"].append(p)
                results[n]["docker"].append(d)
                print(f"N={n} run {i + 1}/{args.runs}: phoenix deploy {p['deploy']:.2f} s, "
                      f"no-op {p['noop']:.2f} s ({p['total']} requests, {p['mutating']} "
                      f"mutating); docker deploy+conv {d['deploy']:.2f} s, no-op "
                      f"{d['noop']:.2f} s", file=sys.stderr, flush=True)
    except (BenchError, subprocess.TimeoutExpired, json.JSONDecodeError) as e:
        print(f"swarm_bench: error: {e}", file=sys.stderr)
        failed = True
    except KeyboardInterrupt:
        print("swarm_bench: interrupted; stacks removed", file=sys.stderr)
        failed = True
    finally:
        if args.keep:
            print(f"swarm_bench: kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if failed:
        return 1
    print_table(args, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
