#!/usr/bin/python3
"""`phoenix create` of N independent LXCs on pve-sim, serially and in parallel.

Usage: pve_bench.py --phoenix PHOENIX --pve-sim PVE_SIM [--schema SCHEMA] [--guests 50]
                    [--latency 50] [--task-ms 2000] [--jobs 1,8] [--runs 1]

pve-sim adds --latency ms to every request and runs every task (create, start) for --task-ms.
Each run starts from an empty simulator. Printed per -j: the wall time, the ideal (the
critical path), the API requests per guest (total and mutating). The critical path of N
independent guests is one guest's chain (create, then start: its requests and tasks in a row),
measured by creating one guest alone; with J jobs the ideal is ceil(N / J) such chains.
"""
import argparse
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def estate(tmp, n, url, fingerprint, secret):
    etc = os.path.join(tmp, "etc")
    os.makedirs(etc)
    platform = {
        "version": "1", "domain_name": "bench.lan",
        "network": {"interfaces": {"name": "vmbr0", "address": "10.1.0.1/16",
                                   "gateway": "10.1.0.254"}},
        "proxmox_api": {"url": url, "node": "pve", "token_id": "root@pam!bench",
                        "token_secret_file": secret, "fingerprint": fingerprint},
    }
    lxcs = {}
    for i in range(n):
        vmid = 2000 + i
        lxcs[str(vmid)] = {
            "name": f"bench-{vmid}", "template": "local:vztmpl/debian-12.tar.zst",
            "memory_mb": 512, "cores": 1, "storage_pool": "local-lvm", "storage_size_gb": 8,
            "network_config": {"name": "eth0", "bridge": "vmbr0",
                               "ip": f"10.1.{i // 250}.{i % 250 + 1}/16", "gw": "10.1.0.254"},
        }
    with open(os.path.join(etc, "phoenix_hypervisor_config.json"), "w") as f:
        json.dump(platform, f)
    with open(os.path.join(etc, "phoenix_lxc_configs.json"), "w") as f:
        json.dump({"lxc_configs": lxcs}, f)
    with open(os.path.join(etc, "phoenix_vm_configs.json"), "w") as f:
        json.dump({"vms": []}, f)
    return etc, [str(2000 + i) for i in range(n)]


def run_once(args, n, jobs):
    tmp = tempfile.mkdtemp(prefix="phoenix-pve-bench-")
    sim = None
    try:
        secret = "bench-" + os.urandom(6).hex()
        with open(os.path.join(tmp, "tokens"), "w") as f:
            f.write(f"root@pam!bench={secret}\n")
        with open(os.path.join(tmp, "secret"), "w") as f:
            f.write(secret + "\n")
        os.chmod(os.path.join(tmp, "secret"), 0o600)
        state = os.path.join(tmp, "state")
        os.makedirs(state)
        sim = subprocess.Popen(
            [args.pve_sim, "--listen", "127.0.0.1", "--port", "0", "--schema", args.schema,
             "--state-dir", state, "--token-file", os.path.join(tmp, "tokens"), "--node", "pve",
             "--latency", str(args.latency), "--task-duration", str(args.task_ms)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        m = re.search(r"https://127\.0\.0\.1:(\d+)", sim.stdout.readline())
        assert m, "pve-sim did not start"
        fp = os.path.join(state, "pve-ssl.fp")
        while not os.path.exists(fp):
            time.sleep(0.02)
        etc, ids = estate(tmp, n, f"https://127.0.0.1:{m.group(1)}", open(fp).read().strip(),
                          os.path.join(tmp, "secret"))
        start = time.monotonic()
        r = subprocess.run([args.phoenix, "-C", etc, "--output", "json", "-j", str(jobs),
                            "create", "--no-setup", *ids], capture_output=True, text=True, timeout=3600)
        wall = time.monotonic() - start
        doc = json.loads(r.stdout)
        assert r.returncode == 0 and doc["ok"], (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
        return wall, doc["requests"]
    finally:
        if sim:
            sim.send_signal(signal.SIGTERM)
            sim.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--phoenix", required=True)
    p.add_argument("--pve-sim", required=True)
    p.add_argument("--schema", default=os.path.join(HERE, "../../shared/specs/pve-apidata.json"))
    p.add_argument("--guests", type=int, default=50)
    p.add_argument("--latency", type=int, default=50)
    p.add_argument("--task-ms", type=int, default=2000)
    p.add_argument("--jobs", default="1,8")
    p.add_argument("--runs", type=int, default=1)
    args = p.parse_args()

    chain, one = min((run_once(args, 1, 1) for _ in range(args.runs)), key=lambda r: r[0])
    print(f"pve-sim: {args.latency} ms per request, {args.task_ms} ms per task; "
          f"{args.guests} independent LXCs")
    print(f"critical path (one guest's chain, measured alone): {chain:.2f} s, "
          f"{one['total']} requests ({one['mutating']} mutating)")
    print(f"{'jobs':>4} {'wall s':>8} {'ideal s':>8} {'wall/ideal':>10} {'req/guest':>9} "
          f"{'mut/guest':>9} {'retries':>7}")
    for jobs in [int(j) for j in args.jobs.split(",")]:
        wall, req = min((run_once(args, args.guests, jobs) for _ in range(args.runs)),
                        key=lambda r: r[0])
        ideal = math.ceil(args.guests / jobs) * chain
        print(f"{jobs:>4} {wall:>8.2f} {ideal:>8.2f} {wall / ideal:>10.2f} "
              f"{req['total'] / args.guests:>9.1f} {req['mutating'] / args.guests:>9.1f} "
              f"{req['retries']:>7}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
