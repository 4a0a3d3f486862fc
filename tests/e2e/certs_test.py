#!/usr/bin/python3
"""`phoenix sync certs` against a real step-ca on 127.0.0.1.

Usage: certs_test.py PHOENIX ESTATE_DIR

step-ca comes from scripts/build-step-ca.sh (PHOENIX_STEP_CA names it; stepca-init is beside
it). The test initialises a CA in a temporary directory, starts step-ca on a free port, and runs
Phoenix on a copy of the example estate whose guests are directories (local_root) and whose
reloads append to a file instead of touching this machine's services:
  1. every certificate of the estate (and of certificates.extra) is issued through the JWK provisioner and installed: the
     leaf and chain verify against the root with `openssl verify`, carry their names, the key
     is mode 0600; the root lands in every guest's trust store; one reload per certificate, one
     trust-store update per guest; the root also where Traefik's serversTransport reads it, and Traefik reloaded for it;
  2. a second run keeps everything: no request to sign, no write, no reload;
  3. with step-ca stopped, a certificate that went missing is not installed (exit 2, a clear
     error, no key left behind) and the others are kept;
  4. the provisioner password never appears in any output.
Without step-ca it exits 77 (CTest's skip), or fails under CI=true.
"""
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

PASSWORD = "pw-" + os.urandom(8).hex()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_ca(binary, tmp):
    init = os.path.join(os.path.dirname(binary), "stepca-init")
    pw = os.path.join(tmp, "ca-password")
    with open(pw, "w") as f:
        f.write(PASSWORD + "\n")
    os.chmod(pw, 0o600)
    env = dict(os.environ, STEPPATH=os.path.join(tmp, "step"))
    port = free_port()
    fp = subprocess.run([init, "-name", "Phoenix Test", "-dns", "127.0.0.1,localhost",
                         "-address", f"127.0.0.1:{port}", "-provisioner", "admin",
                         "-password-file", pw], env=env, capture_output=True, text=True,
                        check=True, timeout=120).stdout.strip().splitlines()[-1]
    log = open(os.path.join(tmp, "step-ca.log"), "w")
    proc = subprocess.Popen([binary, os.path.join(tmp, "step/config/ca.json"),
                             "--password-file", pw], env=env, stdout=log, stderr=log,
                            start_new_session=True)
    root = os.path.join(tmp, "step/certs/root_ca.crt")
    ctx = ssl.create_default_context(cafile=root)
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{port}/health", context=ctx,
                                        timeout=2):
                break
        except OSError:
            assert proc.poll() is None, "step-ca exited: " + open(log.name).read()[-2000:]
            assert time.monotonic() < deadline, "step-ca did not answer /health"
            time.sleep(0.1)
    return proc, port, fp, pw, root


def stop(proc):
    if proc and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main():
    phoenix, estate = sys.argv[1:3]
    binary = os.environ.get("PHOENIX_STEP_CA", "")
    if not binary or not os.access(binary, os.X_OK):
        if os.environ.get("CI") == "true":
            print("step-ca not found: run scripts/build-step-ca.sh and set PHOENIX_STEP_CA")
            return 1
        print("skipped: no step-ca (scripts/build-step-ca.sh)")
        return 77
    tmp = tempfile.mkdtemp(prefix="phoenix-certs-")
    proc = None
    try:
        proc, port, fingerprint, pw, root = start_ca(binary, tmp)
        root_pem = open(root).read()
        copy = os.path.join(tmp, "estate")
        shutil.copytree(estate, copy)
        etc = os.path.join(copy, "etc")
        reloads = os.path.join(tmp, "reloads")
        updates = os.path.join(tmp, "trust-updates")

        def appender(path):
            return ["python3", "-c", f"open({path!r}, 'a').write('x\\n')"]

        def edit(name, fn):
            p = os.path.join(etc, name)
            with open(p) as f:
                doc = json.load(f)
            fn(doc)
            with open(p, "w") as f:
                json.dump(doc, f, indent=1)

        def platform(doc):
            doc["step_ca"].update({"url": f"https://127.0.0.1:{port}",
                                   "fingerprint": fingerprint, "provisioner_name": "admin",
                                   "provisioner_password_file": pw})
            doc["certificates"] = {
                "reload": appender(reloads), "trust_update": appender(updates),
                # One the estate does not derive: the certificate manifest's entries.
                "extra": [{"name": "grafana", "guest": 102,
                           "common_name": "grafana.internal.thinkheads.ai",
                           "sans": ["metrics.internal.thinkheads.ai"]}]}
        edit("phoenix_hypervisor_config.json", platform)
        roots = {}

        def lxcs(doc):
            for vmid, g in doc["lxc_configs"].items():
                if not g.get("is_template"):
                    roots[int(vmid)] = g["local_root"] = os.path.join(tmp, "guests", vmid)
        edit("phoenix_lxc_configs.json", lxcs)

        def vms(doc):
            for g in doc["vms"]:
                if not g.get("is_template"):
                    roots[g["vmid"]] = g["local_root"] = os.path.join(tmp, "guests",
                                                                       str(g["vmid"]))
        edit("phoenix_vm_configs.json", vms)

        def sync(want_exit=0):
            r = subprocess.run([phoenix, "-C", etc, "--output", "json", "sync", "certs"],
                               capture_output=True, text=True, timeout=300)
            assert PASSWORD not in r.stdout + r.stderr, "the provisioner password was printed"
            assert r.returncode == want_exit, (r.returncode, r.stdout[-3000:], r.stderr[-3000:])
            return json.loads(r.stdout)

        def lines(path):
            return len(open(path).read().splitlines()) if os.path.exists(path) else 0

        # 1. Everything issued and installed.
        doc = sync()
        certs = [d for d in doc["deliveries"] if d["name"].startswith("certificate ")]
        trusts = [d for d in doc["deliveries"] if d["name"] == "trust"]
        assert len(certs) >= 4, [d["name"] for d in doc["deliveries"]]
        assert all(d["steps"][0]["what"] == "issue" and d["ok"] for d in certs), certs
        for d in certs:
            guest_root = roots[d["guest"]]
            cert_path = d["steps"][0]["detail"].split(":")[0]
            cert = guest_root + cert_path
            key = cert[:-len(".crt")] + ".key"
            chain = cert[:-len(".crt")] + ".chain.crt"
            assert os.stat(key).st_mode & 0o777 == 0o600, oct(os.stat(key).st_mode)
            v = subprocess.run(["openssl", "verify", "-CAfile", root, "-untrusted", chain, cert],
                               capture_output=True, text=True)
            assert v.returncode == 0, (cert, v.stdout, v.stderr)
            text = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-ext",
                                   "subjectAltName"], capture_output=True, text=True).stdout
            assert "DNS:" in text, (cert, text)
            pub_cert = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-pubkey"],
                                      capture_output=True, text=True).stdout
            pub_key = subprocess.run(["openssl", "pkey", "-in", key, "-pubout"],
                                     capture_output=True, text=True).stdout
            assert pub_cert == pub_key and pub_cert, f"{cert} is not for {key}"
        for vmid, guest_root in roots.items():
            trusted = guest_root + "/usr/local/share/ca-certificates/phoenix-root.crt"
            assert open(trusted).read() == root_pem, vmid
        extra = roots[102] + "/etc/phoenix/ssl/grafana.crt"
        text = subprocess.run(["openssl", "x509", "-in", extra, "-noout", "-ext",
                               "subjectAltName"], capture_output=True, text=True).stdout
        assert "DNS:metrics.internal.thinkheads.ai" in text and "DNS:grafana." in text, text
        backend_roots = [d for d in doc["deliveries"] if d["name"] == "root"]
        assert len(backend_roots) == 1 and backend_roots[0]["ok"], doc
        traefik_root = roots[backend_roots[0]["guest"]] + "/etc/traefik/certs/phoenix_root_ca.crt"
        assert open(traefik_root).read() == root_pem
        # One reload per certificate, and Traefik's once more for the root it reads at start.
        assert lines(reloads) == len(certs) + 1, (lines(reloads), len(certs))
        assert lines(updates) == len(trusts) == len(roots), (lines(updates), len(roots))

        # 2. A second run keeps everything.
        doc = sync()
        assert not doc["changed"], doc
        assert all(d["steps"][0]["what"] == "keep" for d in doc["deliveries"]
                   if d["name"].startswith("certificate ")), doc
        assert lines(reloads) == len(certs) + 1 and lines(updates) == len(roots)

        # 3. The CA down: a missing certificate is not installed, the rest is kept.
        victim = certs[0]
        cert = roots[victim["guest"]] + victim["steps"][0]["detail"].split(":")[0]
        key = cert[:-len(".crt")] + ".key"
        os.remove(cert)
        os.remove(key)
        stop(proc)
        doc = sync(want_exit=2)
        failed = [d for d in doc["deliveries"]
                  if not d["ok"] and d["name"].startswith("certificate ")]
        assert [d["name"] for d in failed] == [victim["name"]], failed
        assert "nothing was installed" in failed[0]["error"], failed[0]["error"]
        assert "step-ca" in failed[0]["error"], failed[0]["error"]
        # The root cannot be fetched either: the trust stores are left as they are.
        assert all("step-ca" in d["error"] for d in doc["deliveries"]
                   if not d["ok"] and d["name"] in ("trust", "root")), doc
        assert not os.path.exists(cert) and not os.path.exists(key)
        print(f"ok: {len(certs)} certificates issued by step-ca and kept on the second run; "
              f"root trusted in {len(roots)} guests")
        return 0
    finally:
        stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
