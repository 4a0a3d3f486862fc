#!/usr/bin/python3
"""`phoenix status` and `phoenix create` against pve-sim: the Proxmox client's token,
fingerprint pinning and inventory read; LXCs created in dependency order, started, and left
alone on a second run; a fault run (20 % of requests failing, seeded) that converges after
re-runs with no guest created twice.

Usage: pve_status_test.py PHOENIX PVE_SIM SCHEMA ESTATE_DIR [--faults]

Starts pve-sim on 127.0.0.1, port 0, with its own state directory; every guest of the example
estate is missing (exit 2); a container created through the API shows as stopped; a wrong
fingerprint and a wrong token are refused without showing the secret; pve-sim is stopped and
its directory removed even when a check fails.
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


def main():
    phoenix, sim, schema, estate = sys.argv[1:5]
    faults = "--faults" in sys.argv[5:]
    tmp = tempfile.mkdtemp(prefix="phoenix-pve-status-")
    proc = None
    try:
        state = os.path.join(tmp, "state")
        os.makedirs(state)
        tokens = os.path.join(tmp, "tokens")
        with open(tokens, "w") as f:
            f.write(f"root@pam!phoenix={SECRET}\n")
        secret = os.path.join(tmp, "secret")
        with open(secret, "w") as f:
            f.write(SECRET + "\n")
        os.chmod(secret, 0o600)
        proc = subprocess.Popen([sim, "--listen", "127.0.0.1", "--port", "0", "--schema", schema,
                                 "--state-dir", state, "--token-file", tokens, "--node", "pve",
                                 "--task-duration", "50"]
                                + (["--fail-rate", "0.2", "--seed", "11"] if faults else []),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = proc.stdout.readline()
        m = re.search(r"https://127\.0\.0\.1:(\d+)", first)
        assert m, f"pve-sim did not say where it listens: {first!r}"
        port = int(m.group(1))
        deadline = time.monotonic() + 30
        fp_file = os.path.join(state, "pve-ssl.fp")
        while not os.path.exists(fp_file):
            assert time.monotonic() < deadline, "pve-sim wrote no certificate fingerprint"
            time.sleep(0.05)
        fingerprint = open(fp_file).read().strip()

        etc = os.path.join(tmp, "estate")
        shutil.copytree(estate, etc)
        config = os.path.join(etc, "etc", "phoenix_hypervisor_config.json")
        with open(config) as f:
            platform = json.load(f)

        def write_api(**overrides):
            api = {"url": f"https://127.0.0.1:{port}", "node": "pve",
                   "token_id": "root@pam!phoenix", "token_secret_file": secret,
                   "fingerprint": fingerprint}
            api.update(overrides)
            platform["proxmox_api"] = api
            with open(config, "w") as f:
                json.dump(platform, f)

        def status(*ids):
            r = subprocess.run([phoenix, "-C", os.path.join(etc, "etc"), "--output", "json",
                                "status", *ids], capture_output=True, text=True, timeout=60)
            assert SECRET not in r.stdout + r.stderr, "the token secret was printed"
            return r

        write_api()
        if faults:
            ctx = ssl.create_default_context(cafile=os.path.join(state, "pve-ssl.pem"))
            ctx.check_hostname = False
            return fault_run(phoenix, os.path.join(etc, "etc"), state,
                             f"https://127.0.0.1:{port}/api2/json/_sim/stats", ctx)
        r = status()
        assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
        doc = json.loads(r.stdout)
        assert not doc["converged"]
        assert {g["observed"] for g in doc["guests"]} == {"missing"}, doc

        # A container created behind Phoenix's back shows up, stopped.
        ctx = ssl.create_default_context(cafile=os.path.join(state, "pve-ssl.pem"))
        ctx.check_hostname = False
        body = urllib.parse.urlencode({"vmid": "101", "hostname": "gw",
                                       "ostemplate": "local:vztmpl/debian-12.tar.zst"}).encode()
        req = urllib.request.Request(f"https://127.0.0.1:{port}/api2/json/nodes/pve/lxc",
                                     data=body, method="POST",
                                     headers={"Authorization":
                                              f"PVEAPIToken=root@pam!phoenix={SECRET}"})
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            assert json.load(resp)["data"].startswith("UPID:pve:")

        def observed():
            doc = json.loads(status("101").stdout)
            return doc["guests"][0]["observed"]
        deadline = time.monotonic() + 30
        while observed() != "stopped":
            assert time.monotonic() < deadline, "LXC 101 never showed as stopped"
            time.sleep(0.1)

        # create: 801 needs 103 and 102 first; 101 exists already and is only started.
        r = subprocess.run([phoenix, "-C", os.path.join(etc, "etc"), "--output", "json",
                            "create", "801", "101"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, (r.stdout, r.stderr)
        doc = json.loads(r.stdout)
        assert [(a["guest"], a["action"]) for a in doc["actions"]] == [
            (103, "create"), (103, "start"), (102, "create"), (102, "start"),
            (801, "create"), (801, "start"), (101, "start")], doc
        r = status("101", "102", "103", "801")
        assert r.returncode == 0 and json.loads(r.stdout)["converged"], r.stdout
        r = subprocess.run([phoenix, "-C", os.path.join(etc, "etc"), "--output", "json",
                            "create", "801", "101"], capture_output=True, text=True, timeout=120)
        doc = json.loads(r.stdout)
        assert doc["actions"] == [] and doc["requests"]["mutating"] == 0, doc

        write_api(fingerprint="AA:" * 31 + "AA")
        r = status()
        assert r.returncode == 4, (r.returncode, r.stdout, r.stderr)
        assert "proxmox_api.fingerprint" in r.stdout + r.stderr, r.stdout + r.stderr

        with open(secret, "w") as f:
            f.write("wrong-secret\n")
        write_api()
        r = status()
        assert r.returncode == 4, (r.returncode, r.stdout, r.stderr)
        assert "401" in r.stdout + r.stderr, r.stdout + r.stderr
        print("ok")
        return 0
    finally:
        if proc:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def fault_run(phoenix, etc, state, stats_url, ctx):
    """Re-runs `create` until it converges (each run is allowed to fail on a fault), then checks
    that every guest exists once and runs, and that the sim has no task left running."""
    for attempt in range(10):
        r = subprocess.run([phoenix, "-C", etc, "--output", "json", "create", "801", "101"],
                           capture_output=True, text=True, timeout=300)
        assert SECRET not in r.stdout + r.stderr
        doc = json.loads(r.stdout)
        if doc["ok"] and not doc["actions"]:
            break
    else:
        raise AssertionError("create did not converge in 10 runs under faults")
    guests = sorted(os.listdir(os.path.join(state, "guests")))
    assert guests == ["101.json", "102.json", "103.json", "801.json"], guests
    r = subprocess.run([phoenix, "-C", etc, "--output", "json", "status", "101", "102", "103",
                        "801"], capture_output=True, text=True, timeout=120)
    observed = {g["id"]: g["observed"] for g in json.loads(r.stdout)["guests"]}
    assert observed == {101: "running", 102: "running", 103: "running", 801: "running"}, \
        (observed, r.stderr)
    # No orphaned task: everything Phoenix started has finished. (The stats request itself may
    # meet an injected fault, so it is asked again.)
    for _ in range(20):
        try:
            with urllib.request.urlopen(stats_url, context=ctx, timeout=10) as resp:
                stats = json.load(resp)["data"]
            break
        except OSError:
            time.sleep(0.05)
    else:
        raise AssertionError("pve-sim's stats never answered")
    assert stats["tasks_running"] == 0, stats
    assert stats["faults_injected"] > 0, stats
    print(f"ok: converged after {attempt + 1} runs; {stats['faults_injected']} faults injected, "
          f"{stats['tasks_started']} tasks, none left running")
    return 0


if __name__ == "__main__":
    sys.exit(main())
