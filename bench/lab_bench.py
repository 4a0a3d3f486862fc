#!/usr/bin/python3
"""`phoenix sync all` on the lab, measured (DESIGN.md §6, issue: sync all, item 8).

Usage: lab_bench.py --phoenix PHOENIX [--estate DIR] [--scale N] [--output text|json] [--keep]

On a lab of its own (`phoenix lab up` with a unique name and directory, removed at the end
unless --keep), for the estate given (default examples/estate), or with --scale N a copy of it N
times its size (scale_estate):
  1. `sync all` from nothing (no guest yet) to converged;
  2. `sync all` again, with nothing to do;
  3. a changed label: the host of the first Swarm router found in a stack's phoenix.json is
     changed in the lab's copy of the estate, then `sync all` runs while the new host name is
     asked through the Nginx gateway (HTTPS, the internal root as the only anchor) every half
     second: the time from the change to the first answer from the service.
For each run it prints the wall time, what Phoenix counted per provider (run_done's requests:
the Proxmox API, the guest agent, the Docker engines, the CA, commands in guests), and the
requests pve-sim counted. It measures; it asserts nothing but that each run converged.
Needs root and what `phoenix lab up` needs (scripts/bench.sh --lab runs it).
"""
import argparse
import ipaddress
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class BenchError(Exception):
    pass


class Lab:
    def __init__(self, phoenix, estate, keep):
        self.phoenix = phoenix
        self.estate = estate
        self.keep = keep
        tag = secrets.token_hex(3)
        self.name = "bench" + tag
        self.dir = f"/var/tmp/phoenix-lab-bench-{tag}"
        self.state = None

    def cmd(self, *args, timeout=3600, check=True):
        r = subprocess.run([self.phoenix, "lab", args[0], "--dir", self.dir, *args[1:]],
                           capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise BenchError(f"phoenix lab {' '.join(args)}: exit {r.returncode}\n"
                             f"{r.stdout[-4000:]}\n{r.stderr[-4000:]}")
        return r

    def up(self):
        self.cmd("up", "--name", self.name, "--estate", self.estate, timeout=900)
        with open(os.path.join(self.dir, "lab.json")) as f:
            self.state = json.load(f)

    def down(self):
        if self.keep:
            print(f"(the lab is kept in {self.dir}: phoenix lab down --dir {self.dir})",
                  file=sys.stderr)
            return
        self.cmd("down", check=False, timeout=900)

    def inside(self, *argv, timeout=60, input=None):
        netns = "/var/run/netns/" + self.state["netns"]
        return subprocess.run(["nsenter", f"--net={netns}", *argv], capture_output=True,
                              text=True, timeout=timeout, input=input,
                              stdin=None if input is not None else subprocess.DEVNULL)

    def sim_requests(self):
        """pve-sim's request counts: (total, mutating), the guest agent's POSTs apart."""
        r = self.inside("curl", "-sS", "--cacert", os.path.join(self.dir, "node", "pve-ssl.pem"),
                        "https://127.0.0.1:8006/api2/json/_sim/stats")
        if r.returncode != 0:
            raise BenchError(f"pve-sim's stats: {r.stderr.strip()}")
        total = mutating = agent = 0
        for key, n in json.loads(r.stdout)["data"]["requests"].items():
            if "/agent/" in key:
                agent += n
                continue
            total += n
            mutating += n if key.split(" ")[0] in ("POST", "PUT", "DELETE") else 0
        return {"total": total, "mutating": mutating, "agent": agent}

    def sync_all(self):
        """One `sync all --output json`: its wall time, exit, actions and request counts."""
        before = self.sim_requests()
        started = time.monotonic()
        r = self.cmd("run", "--output", "json", "sync", "all", check=False)
        wall = time.monotonic() - started
        events = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
        done = next((e for e in events if e["event"] == "run_done"), {})
        results = [e["result"] for e in events if e["event"] == "action_done"]
        after = self.sim_requests()
        if r.returncode != 0:
            raise BenchError(f"sync all exited {r.returncode} after {wall:.0f}s: "
                             f"{done.get('summary')}\n{r.stderr[-4000:]}")
        return {"wall_s": round(wall, 1), "summary": done.get("summary"),
                "changed": results.count("changed"), "actions": len(results),
                "phoenix_requests": done.get("requests", {}),
                "pve_sim_requests": {k: after[k] - before[k] for k in after}}


def scale_estate(source, n, dest):
    """A copy of the estate at `source`, `n` times the size of what the lab runs of it, in
    `dest`: for each further copy, as many LXCs as it has without a GPU (plain ones: base_setup
    and trusted_ca, on the CA), as many worker VMs as it has VMs (copies of its first worker),
    and a copy of each stack a worker names, its routers and host names made unique and given
    to that copy's workers. Addresses and MACs come from the estate's own subnet."""
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("out", "*.tmp"))
    etc = os.path.join(dest, "etc")
    lxc_path = os.path.join(etc, "phoenix_lxc_configs.json")
    vm_path = os.path.join(etc, "phoenix_vm_configs.json")
    with open(lxc_path) as f:
        lxc_doc = json.load(f)
    with open(vm_path) as f:
        vm_doc = json.load(f)
    lxcs, vms = lxc_doc["lxc_configs"], vm_doc["vms"]
    plain = {k: c for k, c in lxcs.items() if c.get("gpu_assignment", "none") in ("none", "")
             and "vllm" not in c.get("features", [])}
    guests_vms = [v for v in vms if not v.get("is_template")]
    worker = next(v for v in vms if v.get("swarm_role") == "worker")
    ca = next(k for k, c in lxcs.items() if "step_ca" in c.get("features", []))
    template = plain[next(iter(plain))]
    used = {c["network_config"]["ip"].split("/")[0] for c in lxcs.values()}
    used |= {v.get("network_config", {}).get("ip", "").split("/")[0] for v in vms}
    net = ipaddress.ip_interface(template["network_config"]["ip"]).network
    free = (str(a) for a in net.hosts() if str(a) not in used and int(a.packed[-1]) >= 20)
    stacks_dir = os.path.join(dest, "stacks")
    names = sorted({(r if isinstance(r, str) else r["name"]) for r in worker.get("docker_stacks", [])})
    next_ct, next_vm = 200, max(int(v["vmid"]) for v in vms) + 1
    for k in range(1, n):
        for _ in plain:
            ip = next(free)
            c = json.loads(json.dumps(template))
            for key in ("application_script", "id_maps", "mount_points", "dependencies"):
                c.pop(key, None)
            c.update(name=f"app-{next_ct}", features=["base_setup", "trusted_ca"],
                     dependencies=[ca], memory_mb=512, cores=1, storage_size_gb=8,
                     mac_address="52:54:00:%02X:%02X:%02X" % (0xAB, next_ct // 256, next_ct % 256),
                     firewall={"enabled": True, "rules": []})
            c["network_config"] = dict(template["network_config"], ip=f"{ip}/{net.prefixlen}")
            lxcs[str(next_ct)] = c
            next_ct += 1
        copies = []
        for name in names:
            copy = f"{name}_{k}"
            shutil.copytree(os.path.join(stacks_dir, name), os.path.join(stacks_dir, copy))
            path = os.path.join(stacks_dir, copy, "phoenix.json")
            with open(path) as f:
                text = f.read()
            text = re.sub(r"(routers|services)\.([A-Za-z0-9_-]+)\.", rf"\1.\2-{k}.", text)
            text = re.sub(r"Host\(`([^`]+)`\)", lambda m: f"Host(`c{k}-{m.group(1)}`)", text)
            with open(path, "w") as f:
                f.write(text)
            copies.append(copy)
        for j, _ in enumerate(guests_vms):
            v = json.loads(json.dumps(worker))
            vmid = next_vm
            next_vm += 1
            v.update(vmid=vmid, name=f"worker-{vmid}", portainer_environment_name=f"worker-{vmid}",
                     docker_stacks=copies if j == 0 else [])
            if "portainer_agent_hostname" in v:
                v["portainer_agent_hostname"] = f"worker-{vmid}-agent." + \
                    worker["portainer_agent_hostname"].split(".", 1)[1]
            v["network_config"] = dict(worker["network_config"],
                                       ip=f"{next(free)}/{net.prefixlen}")
            for vol in v.get("volumes", []):
                if "path" in vol:
                    vol["path"] = vol["path"].replace(str(worker["vmid"]), str(vmid))
            vms.append(v)
    for path, doc in ((lxc_path, lxc_doc), (vm_path, vm_doc)):
        with open(path, "w") as f:
            json.dump(doc, f, indent=4)
    return dest


def change_label(lab):
    """Gives the first Swarm router of the lab's estate a new host name; returns it."""
    stacks = os.path.join(lab.dir, "estate", "stacks")
    for stack in sorted(os.listdir(stacks)):
        path = os.path.join(stacks, stack, "phoenix.json")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            text = f.read()
        m = re.search(r"routers\.[^.=\"]+\.rule=Host\(`([^`]+)`\)", text)
        if not m:
            continue
        new_host = f"{lab.name}-{m.group(1)}"
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text[:m.start(1)] + new_host + text[m.end(1):])
        os.replace(tmp, path)
        return stack, m.group(1), new_host
    raise BenchError("no stack in the estate has a router with a Host rule")


def gateway_address(lab):
    with open(os.path.join(lab.state["estate"], "phoenix_lxc_configs.json")) as f:
        lxcs = json.load(f)["lxc_configs"]
    for ctid, c in lxcs.items():
        if "nginx_gateway" in c.get("features", []):
            return ctid, c["network_config"]["ip"].split("/")[0]
    raise BenchError("the estate has no nginx_gateway guest")


def label_to_route(lab):
    stack, old_host, new_host = change_label(lab)
    ctid, gateway = gateway_address(lab)
    reg = json.load(open(os.path.join(lab.dir, "guests", "registry.json")))
    ca = next(g for g in reg.values() if os.path.exists(
        os.path.join(g["dir"], "rootfs", "etc", "step-ca", "certs", "root_ca.crt")))
    root = os.path.join(lab.dir, "bench-root.crt")
    shutil.copyfile(os.path.join(ca["dir"], "rootfs", "etc", "step-ca", "certs", "root_ca.crt"),
                    root)
    changed = time.monotonic()
    answered = {}

    def poll():
        while "at" not in answered and time.monotonic() - changed < 1800:
            r = lab.inside("curl", "-sS", "-m", "5", "--cacert", root, "--resolve",
                           f"{new_host}:443:{gateway}", f"https://{new_host}/", timeout=30)
            if r.returncode == 0 and "stand-in for " in r.stdout:
                answered["at"] = time.monotonic() - changed
                return
            time.sleep(0.5)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    run = lab.sync_all()
    poller.join(timeout=600)
    if "at" not in answered:
        raise BenchError(f"https://{new_host}/ never answered through the gateway")
    return {"stack": stack, "from": old_host, "to": new_host, "route_answers_s":
            round(answered["at"], 1), "sync_all": run}


def fmt_requests(run):
    parts = [f"{p} {c['total']}" + ("" if p == "guest" else f"/{c['mutating']}")
             for p, c in sorted(run["phoenix_requests"].items())]
    return ", ".join(parts)


def print_text(doc):
    lc = doc["label_change"]
    print(f"estate {doc['estate']} x{doc['scale']}: {doc['guests']} guests; "
          f"lab up {doc['lab_up_s']} s")
    print(f"{'run':<22} {'wall s':>8} {'changed':>9}  pve-sim API (mutating)  "
          f"Phoenix's requests: provider total/mutating")
    for label, run in (("sync all from nothing", doc["from_nothing"]),
                       ("sync all, no-op", doc["no_op"]),
                       ("sync all, label", lc["sync_all"])):
        sim = run["pve_sim_requests"]
        print(f"{label:<22} {run['wall_s']:>8} {run['changed']:>4}/{run['actions']:<4}  "
              f"{sim['total']:>6} ({sim['mutating']:>3}) +{sim['agent']:<5} agent  "
              f"{fmt_requests(run)}")
    print(f"changed label ({lc['stack']}: {lc['from']} -> {lc['to']}) to a route that answers "
          f"through the gateway: {lc['route_answers_s']} s")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--phoenix", default=os.path.join(REPO, "build", "release", "src", "phoenix"))
    p.add_argument("--estate", default=os.path.join(REPO, "examples", "estate"))
    p.add_argument("--scale", type=int, default=1,
                   help="run the estate this many times its size (see scale_estate)")
    p.add_argument("--output", choices=("text", "json"), default="text")
    p.add_argument("--keep", action="store_true", help="leave the lab up")
    args = p.parse_args()
    if os.geteuid() != 0:
        print("lab_bench: the lab needs root", file=sys.stderr)
        return 1
    estate = os.path.abspath(args.estate)
    work = tempfile.mkdtemp(prefix="phoenix-lab-bench-")
    if args.scale > 1:
        estate = scale_estate(estate, args.scale, os.path.join(work, "estate"))
    lab = Lab(os.path.abspath(args.phoenix), estate, args.keep)
    shown = os.path.relpath(args.estate, REPO)
    doc = {"estate": args.estate if shown.startswith("..") else shown, "scale": args.scale}
    try:
        started = time.monotonic()
        lab.up()
        doc["lab_up_s"] = round(time.monotonic() - started, 1)
        print(f"lab up in {doc['lab_up_s']}s; sync all from nothing...", file=sys.stderr)
        doc["from_nothing"] = lab.sync_all()
        print(f"  {doc['from_nothing']['wall_s']}s; again...", file=sys.stderr)
        doc["no_op"] = lab.sync_all()
        print(f"  {doc['no_op']['wall_s']}s; a changed label...", file=sys.stderr)
        doc["label_change"] = label_to_route(lab)
        status = json.loads(lab.cmd("status", "--output", "json").stdout)
        doc["guests"] = len(status["guests"])
    except BenchError as e:
        print(f"lab_bench: {e}", file=sys.stderr)
        return 1
    finally:
        lab.down()
        shutil.rmtree(work, ignore_errors=True)
    if args.output == "json":
        print(json.dumps(doc, indent=1))
        return 0
    print_text(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
