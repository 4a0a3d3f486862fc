#!/usr/bin/python3
"""`phoenix sync all` killed with SIGKILL in the middle, then run again (issue: sync all).

Usage: sync_all_kill_test.py PHOENIX PVE_SIM SCHEMA

An estate of 12 LXCs (no features inside), with the DNS records on a node that is a directory
of this test's, on pve-sim whose tasks take 400 ms each:
  1. `sync all -j 4` is killed (SIGKILL) once pve-sim has started some tasks;
  2. the next `sync all` takes the dead run's lock over, marks its run "interrupted", and
     converges: every guest exists exactly once and runs, the records file holds every guest,
     no task is left running;
  3. a third `sync all` changes nothing and makes no mutating request to pve-sim.
"""
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request

SECRET = "s3cret-" + os.urandom(6).hex()
N = 12


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"  ok: {what}", flush=True)


def main():
    phoenix, pve_sim, schema = sys.argv[1:4]
    tmp = tempfile.mkdtemp(prefix="phoenix-sync-all-kill-")
    sim = run = None
    try:
        state = os.path.join(tmp, "sim")
        os.makedirs(state)
        with open(os.path.join(tmp, "tokens"), "w") as f:
            f.write(f"root@pam!phoenix={SECRET}\n")
        secret = os.path.join(tmp, "secret")
        with open(secret, "w") as f:
            f.write(SECRET + "\n")
        os.chmod(secret, 0o600)
        sim = subprocess.Popen(
            [pve_sim, "--listen", "127.0.0.1", "--port", "0", "--schema", schema,
             "--state-dir", state, "--token-file", os.path.join(tmp, "tokens"), "--node", "pve",
             "--task-duration", "400"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True)
        m = re.search(r"https://127\.0\.0\.1:(\d+)", sim.stdout.readline())
        assert m, "pve-sim did not start"
        url = f"https://127.0.0.1:{m.group(1)}"
        fp_file = os.path.join(state, "pve-ssl.fp")
        deadline = time.monotonic() + 30
        while not os.path.exists(fp_file):
            assert time.monotonic() < deadline, "pve-sim wrote no fingerprint"
            time.sleep(0.05)
        ctx = ssl.create_default_context(cafile=os.path.join(state, "pve-ssl.pem"))
        ctx.check_hostname = False

        def api(path):
            req = urllib.request.Request(url + "/api2/json" + path, headers={
                "Authorization": f"PVEAPIToken=root@pam!phoenix={SECRET}"})
            with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
                return json.load(resp)["data"]

        # The estate.
        etc = os.path.join(tmp, "estate", "etc")
        os.makedirs(etc)
        node = os.path.join(tmp, "node")
        os.makedirs(node)
        platform = {
            "version": "1", "domain_name": "kill.lan",
            "network": {"interfaces": {"name": "vmbr0", "address": "10.2.0.1/24",
                                       "gateway": "10.2.0.254"}},
            "dns_server": {"enabled": True, "records_file": "/etc/dnsmasq.d/phoenix.conf",
                           "reload": ["true"]},
            "proxmox_api": {"url": url, "node": "pve", "token_id": "root@pam!phoenix",
                            "token_secret_file": secret,
                            "fingerprint": open(fp_file).read().strip(),
                            "host_root": node},
        }
        lxcs = {}
        for i in range(N):
            vmid = 3000 + i
            lxcs[str(vmid)] = {
                "name": f"kill-{vmid}", "template": "local:vztmpl/debian-12.tar.zst",
                "memory_mb": 256, "cores": 1, "storage_pool": "local-lvm",
                "storage_size_gb": 4,
                "network_config": {"name": "eth0", "bridge": "vmbr0",
                                   "ip": f"10.2.0.{i + 10}/24", "gw": "10.2.0.254"}}
        for name, doc in (("phoenix_hypervisor_config.json", platform),
                          ("phoenix_lxc_configs.json", {"lxc_configs": lxcs}),
                          ("phoenix_vm_configs.json", {"vms": []})):
            with open(os.path.join(etc, name), "w") as f:
                json.dump(doc, f)
        state_dir = os.path.join(tmp, "phoenix-state")

        def phx(*args):
            return [phoenix, "-C", etc, "--state-dir", state_dir, *args]

        # 1. Killed in the middle.
        run = subprocess.Popen(phx("-j", "4", "sync", "all"), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while api("/_sim/stats")["tasks_started"] < 3:
            assert run.poll() is None, "sync all ended before it could be killed"
            assert time.monotonic() < deadline, "pve-sim saw no task"
            time.sleep(0.05)
        run.send_signal(signal.SIGKILL)
        run.wait()
        run = None
        made = len([r for r in api("/cluster/resources") if r.get("type") == "lxc"])
        check(0 < made < N, f"sync all killed (SIGKILL) with {made} of {N} guests made")

        # 2. Run again: it finishes the job.
        r = subprocess.run(phx("-j", "4", "sync", "all"), capture_output=True, text=True,
                           timeout=600)
        check(r.returncode == 0 and "did not finish; this run finishes its work" in r.stderr,
              "the next sync all takes the lock over and converges: " + r.stdout.strip()[-200:])
        guests = [x for x in api("/cluster/resources") if x.get("type") == "lxc"]
        ids = sorted(int(x["vmid"]) for x in guests)
        check(ids == list(range(3000, 3000 + N)) and
              all(x["status"] == "running" for x in guests),
              f"every guest exists exactly once and runs ({len(ids)} guests)")
        with open(os.path.join(node, "etc/dnsmasq.d/phoenix.conf")) as f:
            records = f.read()
        check(all(f"address=/kill-{3000 + i}.kill.lan/10.2.0.{i + 10}" in records
                  for i in range(N)), "the records file holds every guest")
        stats = api("/_sim/stats")
        check(stats["tasks_running"] == 0, "no task is left running")
        hist = json.loads(subprocess.run(phx("--output", "json", "history"), capture_output=True,
                                         text=True).stdout)["runs"]
        check([h["result"] for h in hist] == ["ok", "interrupted"],
              "history: the killed run is interrupted, the next one ok")

        # 3. Converged: nothing changes, nothing mutates.
        def mutating(s):
            return sum(v for k, v in s["requests"].items()
                       if k.split(" ")[0] in ("POST", "PUT", "DELETE"))
        before = mutating(api("/_sim/stats"))
        r = subprocess.run(phx("--output", "json", "sync", "all"), capture_output=True,
                           text=True, timeout=600)
        done = [json.loads(x) for x in r.stdout.splitlines()]
        results = {e["action"]: e["result"] for e in done if e["event"] == "action_done"}
        check(r.returncode == 0 and results and
              all(v == "unchanged" for v in results.values()),
              f"a third sync all changes nothing: {results}")
        check(mutating(api("/_sim/stats")) == before, "and makes no mutating request")
        print("sync all killed and run again: passed")
        return 0
    except Exception:
        traceback.print_exc()
        return 1
    finally:
        if run:
            run.kill()
            run.wait()
        if sim:
            sim.send_signal(signal.SIGTERM)
            try:
                sim.wait(timeout=10)
            except subprocess.TimeoutExpired:
                sim.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
