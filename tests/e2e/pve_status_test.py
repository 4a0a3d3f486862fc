#!/usr/bin/python3
"""`phoenix status` against pve-sim: the Proxmox client's token, fingerprint pinning and
inventory read, end to end.

Usage: pve_status_test.py PHOENIX PVE_SIM SCHEMA ESTATE_DIR

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
                                 "--task-duration", "50"],
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


if __name__ == "__main__":
    sys.exit(main())
