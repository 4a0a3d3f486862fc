#!/usr/bin/python3
"""The Proxmox provider and the guest commands against pve-sim, over HTTPS with a pinned
fingerprint and an API token.

Usage: pve_guests_test.py PHOENIX PVE_SIM SCHEMA ESTATE_DIR [--faults]

Without --faults, on a copy of the example estate:
  status      every guest missing (exit 2); a container made behind Phoenix's back shows stopped
  create      801 and 101 with what they need, dependencies first; the hand-made 101 is
              configured to the estate; raw lxc keys land in the node's config file through the
              host channel; each guest's firewall rules are in Proxmox in the estate's order
  re-run      status converged with no drift, plan --proxmox empty, create makes no mutating call
  drift       memory changed and a firewall rule added by hand: status and plan show them,
              create puts them back
  shrink      a smaller rootfs is refused by create and by plan, and nothing is changed
  VMs         1002 needs 1001, cloned from the template VM 9000 (built from its cloud image):
              cloud-init user, URL-encoded SSH key, ipconfig0, disk grown, agent waited on
  power       stop/start only the named guest, or --with-deps; restart
  delete      refused while a dependent exists; with it, in order, --purge
  firewall    sync firewall reconciles the cluster's options and rules, then changes nothing
  TLS, token  a wrong fingerprint and a wrong token exit 4 without showing the secret
With --faults: pve-sim fails 20 % of requests with a 5xx, drops 3 % of connections unanswered,
and holds guest locks for 25 % of mutating calls; create -j 4 converges (a second run, allowed
as a safety net, must change nothing), with exactly one of each guest and no task left running.

pve-sim runs on 127.0.0.1 with its own state directory; it is stopped and the directory
removed even when a check fails. The token secret must never appear in any output.
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
import urllib.parse
import urllib.request

SECRET = "s3cret-" + os.urandom(6).hex()
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPhoenixTestKey+/= phoenix@test"


class Sim:
    def __init__(self, binary, schema, tmp, extra):
        self.state = os.path.join(tmp, "state")
        os.makedirs(self.state)
        tokens = os.path.join(tmp, "tokens")
        with open(tokens, "w") as f:
            f.write(f"root@pam!phoenix={SECRET}\n")
        self.proc = subprocess.Popen(
            [binary, "--listen", "127.0.0.1", "--port", "0", "--schema", schema,
             "--state-dir", self.state, "--token-file", tokens, "--node", "pve",
             "--task-duration", "50", "--agent-delay", "300"] + extra,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = self.proc.stdout.readline()
        m = re.search(r"https://127\.0\.0\.1:(\d+)", first)
        assert m, f"pve-sim did not say where it listens: {first!r}"
        self.url = f"https://127.0.0.1:{m.group(1)}"
        fp_file = os.path.join(self.state, "pve-ssl.fp")
        deadline = time.monotonic() + 30
        while not os.path.exists(fp_file):
            assert time.monotonic() < deadline, "pve-sim wrote no certificate fingerprint"
            time.sleep(0.05)
        self.fingerprint = open(fp_file).read().strip()
        self.ctx = ssl.create_default_context(cafile=os.path.join(self.state, "pve-ssl.pem"))
        self.ctx.check_hostname = False

    def api(self, method, path, params=None, retries=1):
        """One request as a hand would make it (not through Phoenix)."""
        body = urllib.parse.urlencode(params or {}).encode() if method in ("POST", "PUT") \
            else None
        url = self.url + "/api2/json" + path
        if method in ("GET", "DELETE") and params:
            url += "?" + urllib.parse.urlencode(params)
        for attempt in range(retries):
            req = urllib.request.Request(url, data=body, method=method, headers={
                "Authorization": f"PVEAPIToken=root@pam!phoenix={SECRET}"})
            try:
                with urllib.request.urlopen(req, context=self.ctx, timeout=10) as resp:
                    return json.load(resp)["data"]
            except (OSError, urllib.error.HTTPError):
                if attempt + 1 == retries:
                    raise
                time.sleep(0.05)

    def wait_task(self, upid):
        deadline = time.monotonic() + 30
        while self.api("GET", f"/nodes/pve/tasks/{urllib.parse.quote(upid)}/status",
                       retries=20)["status"] != "stopped":
            assert time.monotonic() < deadline, f"task {upid} never stopped"
            time.sleep(0.05)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Phoenix:
    def __init__(self, binary, estate, tmp, sim):
        self.binary = binary
        self.root = os.path.join(tmp, "estate")
        shutil.copytree(estate, self.root)
        self.etc = os.path.join(self.root, "etc")
        self.secret = os.path.join(tmp, "secret")
        with open(self.secret, "w") as f:
            f.write(SECRET + "\n")
        os.chmod(self.secret, 0o600)
        key = os.path.join(tmp, "admin.pub")
        with open(key, "w") as f:
            f.write(SSH_KEY + "\n")
        self.sim = sim
        self.platform = self.load("phoenix_hypervisor_config.json")
        self.platform["users"]["ssh_public_key_file"] = key
        self.write_api()

    def load(self, name):
        with open(os.path.join(self.etc, name)) as f:
            return json.load(f)

    def save(self, name, doc):
        with open(os.path.join(self.etc, name), "w") as f:
            json.dump(doc, f, indent=1)

    def write_api(self, **overrides):
        api = {"url": self.sim.url, "node": "pve", "token_id": "root@pam!phoenix",
               "token_secret_file": self.secret, "fingerprint": self.sim.fingerprint,
               "host_root": self.sim.state}
        api.update(overrides)
        self.platform["proxmox_api"] = api
        self.save("phoenix_hypervisor_config.json", self.platform)

    def run(self, *args, timeout=300):
        r = subprocess.run([self.binary, "-C", self.etc, "--output", "json", *args],
                           capture_output=True, text=True, timeout=timeout)
        assert SECRET not in r.stdout + r.stderr, f"the token secret was printed by {args}"
        return r

    def json(self, *args, codes=(0,)):
        r = self.run(*args)
        assert r.returncode in codes, (args, r.returncode, r.stdout, r.stderr)
        try:
            return json.loads(r.stdout)
        except ValueError:
            raise AssertionError(f"{args}: not JSON: {r.stdout!r} {r.stderr!r}")


def steps_of(doc):
    return [(s["guest"], s["action"]) for s in doc["steps"]]


def firewall_rules(sim, kind, vmid):
    return [(r["type"], r["action"], r.get("proto"), r.get("dport"), r.get("comment"))
            for r in sim.api("GET", f"/nodes/pve/{kind}/{vmid}/firewall/rules")]


def estate_rules(entry):
    return [(r["type"], r["action"], r.get("proto"), r.get("port"), r.get("comment"))
            for r in entry["firewall"]["rules"]]


def main_run(ph, sim):
    lxcs = {str(k): v for k, v in ph.load("phoenix_lxc_configs.json")["lxc_configs"].items()}

    doc = ph.json("status", codes=(2,))
    assert not doc["converged"]
    assert {g["observed"] for g in doc["guests"]} == {"missing"}, doc

    # A container made behind Phoenix's back, with few settings: it shows up stopped.
    upid = sim.api("POST", "/nodes/pve/lxc", {
        "vmid": "101", "hostname": "gw", "memory": "256",
        "ostemplate": "local:vztmpl/debian-12.tar.zst",
        "rootfs": lxcs["101"]["storage_pool"] + ":4"})
    sim.wait_task(upid)
    doc = ph.json("status", "101", "--no-config", codes=(2,))
    assert doc["guests"][0]["observed"] == "stopped", doc

    # create: 801 needs 103 and 102; 101 exists and is configured, grown and started.
    doc = ph.json("create", "--no-setup", "801", "101")
    order = []
    for guest, _ in steps_of(doc):
        if guest not in order:
            order.append(guest)
    assert order == [103, 102, 801, 101], steps_of(doc)
    actions = {(g, a) for g, a in steps_of(doc)}
    for guest in (103, 102, 801):
        assert (guest, "create") in actions and (guest, "start") in actions, steps_of(doc)
    assert (101, "configure") in actions and (101, "resize") in actions, steps_of(doc)
    assert (101, "create") not in actions, steps_of(doc)
    assert (801, "raw lxc keys") in actions and (101, "raw lxc keys") in actions, steps_of(doc)
    assert (103, "snapshot") in actions, steps_of(doc)
    conf101 = open(os.path.join(sim.state, "etc/pve/lxc/101.conf")).read()
    assert "lxc.idmap: g 33 33 1\n" in conf101, conf101
    assert "lxc.idmap: u 0 100000 65536\n" in conf101, conf101
    conf801 = open(os.path.join(sim.state, "etc/pve/lxc/801.conf")).read()
    assert "lxc.apparmor.profile: unconfined\n" in conf801, conf801
    for vmid in ("101", "102", "103", "801"):
        assert firewall_rules(sim, "lxc", vmid) == estate_rules(lxcs[vmid]), vmid
        assert sim.api("GET", f"/nodes/pve/lxc/{vmid}/firewall/options").get("enable") == 1
    config101 = sim.api("GET", "/nodes/pve/lxc/101/config")
    assert config101["hostname"] == lxcs["101"]["name"], config101
    assert "size=%dG" % lxcs["101"]["storage_size_gb"] in config101["rootfs"], config101

    # Converged: no drift, nothing to plan, a second create only reads.
    doc = ph.json("status", "101", "102", "103", "801")
    assert doc["converged"], doc
    doc = ph.json("plan", "--proxmox", "101", "102", "103", "801")
    changes = [a for a in doc["actions"] if a["action"] != "no-op"]
    assert not changes and not doc["errors"], doc
    doc = ph.json("create", "--no-setup", "801", "101")
    assert doc["steps"] == [] and doc["requests"]["mutating"] == 0, doc

    # Drift made by hand shows, and create puts it back.
    sim.api("PUT", "/nodes/pve/lxc/102/config", {"memory": "333"})
    sim.api("POST", "/nodes/pve/lxc/103/firewall/rules",
            {"type": "in", "action": "ACCEPT", "proto": "tcp", "dport": "23", "enable": "1",
             "comment": "added by hand"})
    doc = ph.json("status", "102", "103", codes=(2,))
    drift = {g["id"]: g["drift"] for g in doc["guests"]}
    assert any(d.startswith("memory: 333") for d in drift[102]), drift
    doc = ph.json("plan", "--proxmox", "102", "103")
    changed = {a["id"]: a for a in doc["actions"] if a["action"] != "no-op"}
    assert set(changed) == {"lxc/102", "firewall/103"}, doc
    assert [c["field"] for c in changed["lxc/102"]["changes"]] == ["memory_mb"], changed
    doc = ph.json("create", "--no-setup", "102", "103")
    assert sorted(steps_of(doc)) == [(102, "configure"), (103, "firewall")], steps_of(doc)
    assert firewall_rules(sim, "lxc", "103") == estate_rules(lxcs["103"])
    assert ph.json("status", "102", "103")["converged"]

    # A smaller disk is refused, by plan and by create, and nothing changes.
    doc_lxcs = ph.load("phoenix_lxc_configs.json")
    size = doc_lxcs["lxc_configs"]["102"]["storage_size_gb"]
    doc_lxcs["lxc_configs"]["102"]["storage_size_gb"] = size - 1
    ph.save("phoenix_lxc_configs.json", doc_lxcs)
    r = ph.run("plan", "--proxmox", "102")
    assert r.returncode == 1 and "cannot shrink" in r.stdout, (r.returncode, r.stdout)
    r = ph.run("create", "--no-setup", "102")
    assert r.returncode == 2 and "only grows" in r.stdout, (r.returncode, r.stdout, r.stderr)
    assert json.loads(r.stdout)["requests"]["mutating"] == 0, r.stdout
    doc_lxcs["lxc_configs"]["102"]["storage_size_gb"] = size
    ph.save("phoenix_lxc_configs.json", doc_lxcs)

    # VMs: 1002 needs 1001, cloned from the template 9000, which comes from its cloud image.
    doc = ph.json("create", "--no-setup", "1002")
    order = []
    for guest, _ in steps_of(doc):
        if guest not in order:
            order.append(guest)
    assert order == [9000, 1001, 1002], steps_of(doc)
    actions = {(g, a) for g, a in steps_of(doc)}
    assert {(9000, "create"), (9000, "convert to template"), (1001, "clone"),
            (1001, "configure"), (1001, "resize"), (1001, "start"), (1002, "clone")} <= actions
    assert (9000, "start") not in actions, steps_of(doc)
    config = sim.api("GET", "/nodes/pve/qemu/1001/config")
    assert config["ciuser"] == "phoenix_user", config
    assert urllib.parse.unquote(config["sshkeys"]).strip() == SSH_KEY, config
    assert config["ipconfig0"] == "ip=10.0.0.111/24,gw=10.0.0.1", config
    assert "size=64G" in config["scsi0"], config
    doc = ph.json("status", "9000", "1001", "1002")
    health = {g["id"]: g["health"] for g in doc["guests"]}
    assert health == {9000: "template", 1001: "agent answers", 1002: "agent answers"}, doc
    assert doc["converged"], doc
    assert ph.json("create", "--no-setup", "1002")["requests"]["mutating"] == 0

    def power():
        doc = ph.json("status", "--no-config", "1001", "1002", "101", codes=(0, 2))
        return {g["id"]: g["observed"] for g in doc["guests"]}

    # Power: only the named guest, unless --with-deps.
    doc = ph.json("stop", "1001")
    assert steps_of(doc) == [(1001, "stop")], doc
    assert power() == {101: "running", 1001: "stopped", 1002: "running"}
    doc = ph.json("start", "1001")
    assert steps_of(doc) == [(1001, "start")], doc
    doc = ph.json("stop", "--with-deps", "1001")
    assert steps_of(doc) == [(1002, "stop"), (1001, "stop")], doc
    doc = ph.json("start", "--with-deps", "1002")
    assert steps_of(doc) == [(1001, "start"), (1002, "start")], doc
    doc = ph.json("restart", "101")
    assert steps_of(doc) == [(101, "stop"), (101, "start")], doc
    assert power() == {101: "running", 1001: "running", 1002: "running"}

    # Delete: refused while an existing guest depends on it; then in order, purged.
    r = ph.run("delete", "1001")
    assert r.returncode == 1 and "1002" in r.stdout + r.stderr, (r.stdout, r.stderr)
    assert power()[1001] == "running"
    doc = ph.json("delete", "--purge", "1001", "1002")
    assert steps_of(doc) == [(1002, "stop"), (1002, "delete"), (1001, "stop"),
                             (1001, "delete")], doc
    doc = ph.json("status", "--no-config", "1001", "1002", codes=(2,))
    assert {g["observed"] for g in doc["guests"]} == {"missing"}, doc
    assert not os.path.exists(os.path.join(sim.state, "guests", "1001.json"))
    assert ph.json("delete", "1001")["steps"] == []

    # The cluster firewall: options and rules reconciled, then nothing to do.
    sim.api("POST", "/cluster/firewall/rules", {"type": "in", "action": "DROP", "proto": "udp",
                                                "dport": "9", "enable": "1"})
    doc = ph.json("sync", "firewall")
    assert (None, "firewall options") in steps_of(doc), doc
    cluster = [(r["type"], r["action"], r.get("proto"), r.get("dport"), r.get("comment"))
               for r in sim.api("GET", "/cluster/firewall/rules")]
    want = [(r["type"], r["action"], r.get("proto"), r.get("port"), r.get("comment"))
            for r in ph.platform["firewall"]["global_firewall_rules"]]
    assert cluster == want, (cluster, want)
    options = sim.api("GET", "/cluster/firewall/options")
    # DROP in is Proxmox's default: left unset, it is already what the estate says.
    assert options.get("enable") == 1 and options.get("policy_in", "DROP") == "DROP", options
    doc = ph.json("sync", "firewall")
    assert doc["steps"] == [] and doc["requests"]["mutating"] == 0, doc

    # TLS pinning and the token.
    ph.write_api(fingerprint="AA:" * 31 + "AA")
    r = ph.run("status")
    assert r.returncode == 4 and "proxmox_api.fingerprint" in r.stdout + r.stderr, \
        (r.returncode, r.stdout, r.stderr)
    with open(ph.secret, "w") as f:
        f.write("wrong-secret\n")
    ph.write_api()
    r = ph.run("status")
    assert r.returncode == 4 and "401" in r.stdout + r.stderr, (r.returncode, r.stdout, r.stderr)
    print("ok")


def fault_run(ph, sim):
    """create -j 4 under faults, re-run until converged; then one of each guest, no task left
    running, and a last run that changes nothing."""
    wanted = ["801", "101", "1002"]
    runs = []
    # Each guest's convergence retries what may pass, so one run should do; a third would mean
    # the retries do not work.
    for attempt in range(3):
        r = ph.run("-j", "4", "create", "--no-setup", *wanted)
        doc = json.loads(r.stdout)
        runs.append((r.returncode, len(doc["steps"]), doc["requests"]["retries"]))
        for f in doc["failed"]:
            print(f"run {attempt + 1}: {f['guest']}: {f['error']}")
        if doc["ok"] and not doc["steps"]:
            break
    else:
        raise AssertionError(f"create did not converge in 3 runs under faults: {runs}")
    guests = sorted(os.listdir(os.path.join(sim.state, "guests")))
    assert guests == sorted(f"{g}.json" for g in (101, 102, 103, 801, 1001, 1002, 9000)), guests
    doc = ph.json("status", "101", "102", "103", "801", "1001", "1002", "9000", codes=(0, 2, 4))
    observed = {g["id"]: g["observed"] for g in doc["guests"]}
    assert observed == {101: "running", 102: "running", 103: "running", 801: "running",
                        1001: "running", 1002: "running", 9000: "template"}, doc
    for _ in range(50):
        try:
            stats = sim.api("GET", "/_sim/stats")
            break
        except OSError:
            time.sleep(0.05)
    else:
        raise AssertionError("pve-sim's stats never answered")
    assert stats["tasks_running"] == 0, stats
    assert stats["faults_injected"] > 0 and stats["locks_injected"] > 0, stats
    print(f"ok: converged after {len(runs)} runs {runs}; {stats['faults_injected']} faults, "
          f"{stats['locks_injected']} lock conflicts, {stats['drops_injected']} drops injected; "
          f"{stats['tasks_started']} tasks, none left running")


def main():
    phoenix, sim_binary, schema, estate = sys.argv[1:5]
    faults = "--faults" in sys.argv[5:]
    tmp = tempfile.mkdtemp(prefix="phoenix-pve-guests-")
    sim = None
    try:
        extra = ["--fail-rate", "0.2", "--drop-rate", "0.03", "--lock-rate", "0.25",
                 "--lock-wait", "300", "--seed", "11"] if faults else []
        sim = Sim(sim_binary, schema, tmp, extra)
        ph = Phoenix(phoenix, estate, tmp, sim)
        if faults:
            fault_run(ph, sim)
        else:
            main_run(ph, sim)
        return 0
    finally:
        if sim:
            sim.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
