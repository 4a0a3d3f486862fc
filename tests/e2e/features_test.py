#!/usr/bin/python3
"""`phoenix sync guests` on real Debian containers (the guest features, issue: guest features).

Usage: features_test.py PHOENIX ESTATE_DIR

The example estate's gateway (101), Traefik (102) and Step-CA (103) guests become real LXC system
containers with systemd, on copies of the debootstrap root filesystem that
scripts/guest-rootfs.sh builds (PHOENIX_GUEST_ROOTFS names it; nothing is pulled), each with its
estate address on a bridge in a network namespace of this test's own, where Phoenix runs too.
Phoenix reaches them exactly as on a Proxmox node: through `pct exec`, here a stand-in on PATH
that runs the command with lxc-attach. The binaries the recipes push come from the project's
caches: step-ca and step (scripts/build-step-ca.sh, PHOENIX_STEP_CA), traefik
(scripts/build-traefik.sh, PHOENIX_TRAEFIK).

  1. `sync guests 103 --no-health`: step-ca installed, initialised with the provisioner password
     of step_ca.provisioner_password_file, running under systemd. Its fingerprint is read from
     the root it made, as an operator would, and set in step_ca.
  2. `sync guests 101 102 103 120`: base_setup, trusted_ca (the root fetched from the guest's
     own step-ca over TLS pinned by that fingerprint, into the trust store), step_cli
     (configured against that CA with its root), nginx_gateway, traefik, 101's application script; every health check passes: the recipes' (nginx -t, Traefik's
     ping, step-ca's /health with its root) and 103's own HTTPS check from Phoenix to
     https://10.0.0.10:9000/health with the internal root as the only trust anchor.
     A fourth guest, LXC 120, runs Docker (docker, docker_proxy) in a container that allows it:
     its certificate (which Phoenix derives for every docker_proxy guest, in /etc/docker/ssl) is
     issued by the guest's step-ca (`step ca certificate` with the JWK provisioner, as sync
     certs does) and put there; the
     engine then answers on https://10.0.0.120:2376 with mutual TLS, from the guest and from
     Phoenix's side (`phoenix swarm status`-style request with the client certificate).
  3. The same again changes nothing.
  4. Drift by hand (nginx stopped, /etc/timezone edited, Traefik's binary removed, the default
     nginx site back) is put back by the next run, and only that: Traefik restarted because its
     binary changed; nothing else restarted.
  5. A changed application script runs again, once.
Without root, lxc, the rootfs or the binaries it exits 77 (CTest's skip), or fails under CI=true.
Every container, namespace and file it makes is removed even when a check fails.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "lab"))
import lxc_guest  # noqa: E402

SKIP = 77


class Skip(Exception):
    pass


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"  ok: {what}", flush=True)


def run(argv, *, check=True, timeout=300, env=None):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                       stdin=subprocess.DEVNULL)
    if check and r.returncode != 0:
        raise AssertionError(f"{argv} exited {r.returncode}\nstdout:\n{r.stdout[-4000:]}\n"
                             f"stderr:\n{r.stderr[-4000:]}")
    return r


def need(path, what):
    if not path or not os.path.exists(path):
        raise Skip(f"{what} not found ({path or 'unset'})")
    return path


class Switch:
    """A network namespace of the test's own with a bridge holding the lab subnet; Phoenix runs
    in it, and each guest gets a veth end on the bridge. Held by a process that exits when its
    standard input closes."""

    def __init__(self, address):
        self.holder = subprocess.Popen(
            ["unshare", "--net", "--", "sh", "-c",
             'ip link set lo up && ip link add br0 type bridge && ip addr add "$1" dev br0 && '
             'ip link set br0 up && echo ready && exec cat', "sh", address],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if self.holder.stdout.readline().strip() != "ready":
            raise AssertionError("the switch namespace did not start")
        self.netns = f"/proc/{self.holder.pid}/ns/net"

    def enter(self, *argv):
        return ["nsenter", f"--net={self.netns}", *argv]

    def attach(self, guest, ip_cidr, n):
        outside, inside = f"phxs{os.getpid() % 10000}g{n}", f"phxg{os.getpid() % 10000}g{n}"
        run(self.enter("ip", "link", "add", outside, "type", "veth", "peer", "name", inside))
        run(self.enter("ip", "link", "set", outside, "master", "br0", "up"))
        run(self.enter("ip", "link", "set", inside, "netns", str(guest.pid())))
        for argv in (["ip", "link", "set", inside, "name", "eth0"],
                     ["ip", "addr", "add", ip_cidr, "dev", "eth0"],
                     ["ip", "link", "set", "eth0", "up"]):
            r = guest.run(argv)
            if r.returncode != 0:
                raise AssertionError(f"{argv} in {guest.name}: {r.stderr}")

    def close(self):
        try:
            self.holder.stdin.close()
            self.holder.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.holder.kill()


def main():
    phoenix, source = sys.argv[1:3]
    tmp = tempfile.mkdtemp(prefix="phoenix-features-")
    guests, switch = {}, None
    try:
        if os.geteuid() != 0:
            raise Skip("real containers and namespaces need root")
        for prog in ("lxc-start", "lxc-attach", "unshare", "nsenter", "ip"):
            if not shutil.which(prog, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"):
                raise Skip(f"{prog} is not installed (scripts/guest-rootfs.sh installs lxc)")
        rootfs = need(os.environ.get("PHOENIX_GUEST_ROOTFS"),
                      "the guest root filesystem (scripts/guest-rootfs.sh; PHOENIX_GUEST_ROOTFS)")
        step_ca = need(os.environ.get("PHOENIX_STEP_CA"), "step-ca (scripts/build-step-ca.sh)")
        step = need(os.path.join(os.path.dirname(step_ca), "step"),
                    "the step CLI (scripts/build-step-ca.sh)")
        traefik = need(os.environ.get("PHOENIX_TRAEFIK"), "Traefik (scripts/build-traefik.sh)")

        # The estate: the example, with the binaries and the password file of this test, and a
        # Docker host.
        estate = os.path.join(tmp, "estate")
        shutil.copytree(source, estate)
        etc = os.path.join(estate, "etc")
        password = os.path.join(tmp, "provisioner-password")
        with open(password, "w") as f:
            f.write("pw-" + os.urandom(8).hex() + "\n")
        os.chmod(password, 0o600)

        def edit(name, fn):
            p = os.path.join(etc, name)
            with open(p) as f:
                doc = json.load(f)
            fn(doc)
            with open(p, "w") as f:
                json.dump(doc, f, indent=1)

        def platform(doc):
            doc["guest_features"] = {"step_binary": step, "step_ca_binary": step_ca,
                                     "traefik_binary": traefik}
            doc["step_ca"]["provisioner_password_file"] = password
        edit("phoenix_hypervisor_config.json", platform)

        def lxcs(doc):
            # A Docker host of this test's own, shaped like the CA's entry.
            d = json.loads(json.dumps(doc["lxc_configs"]["103"]))
            for k in ("traefik_service", "mount_points", "health_checks", "firewall",
                      "mac_address", "dependencies"):
                d.pop(k, None)
            d.update(name="docker-lab", features=["base_setup", "trusted_ca", "docker",
                                                  "docker_proxy", "portainer_agent"])
            d["network_config"]["ip"] = "10.0.0.120/24"
            doc["lxc_configs"]["120"] = d
        edit("phoenix_lxc_configs.json", lxcs)

        with open(os.path.join(etc, "phoenix_lxc_configs.json")) as f:
            lxc_configs = json.load(f)["lxc_configs"]

        # The guests, on the switch, and pct standing in for Proxmox's.
        switch = Switch("10.0.0.250/24")
        for n, ctid in enumerate(("101", "102", "103", "120")):
            guests[ctid] = lxc_guest.start(rootfs, f"feat{ctid}", base_dir=tmp,
                                           docker=ctid == "120")
            switch.attach(guests[ctid], lxc_configs[ctid]["network_config"]["ip"], n)
        bin_dir = os.path.join(tmp, "bin")
        os.makedirs(bin_dir)
        # lxc-attach reaches a container's monitor over an abstract socket, which belongs to the
        # network namespace it was made in: the stand-in goes back to this test's own first.
        back = ["nsenter", f"--net=/proc/{os.getpid()}/ns/net"]
        with open(os.path.join(tmp, "pct.json"), "w") as f:
            json.dump({ctid: back + g.argv_prefix() for ctid, g in guests.items()}, f)
        with open(os.path.join(bin_dir, "pct"), "w") as f:
            f.write(f"""#!/usr/bin/python3
import json, os, sys
# `pct exec <vmid> -- argv...` on a Proxmox node, here lxc-attach into the test's container.
if len(sys.argv) < 5 or sys.argv[1] != "exec" or sys.argv[3] != "--":
    sys.exit("pct stand-in: expected exec <vmid> -- argv")
prefix = json.load(open({os.path.join(tmp, "pct.json")!r})).get(sys.argv[2])
if prefix is None:
    sys.exit(f"Configuration file 'nodes/pve/lxc/{{sys.argv[2]}}.conf' does not exist")
os.execvp(prefix[0], prefix + sys.argv[4:])
""")
        os.chmod(os.path.join(bin_dir, "pct"), 0o755)
        env = dict(os.environ, PATH=bin_dir + ":" + os.environ["PATH"])

        def sync(*args, want=0):
            r = run(switch.enter(phoenix, "-C", etc, "--output", "json", "sync", "guests", *args),
                    check=False, env=env, timeout=600)
            secret = open(password).read().strip()
            assert secret not in r.stdout + r.stderr, "the provisioner password was printed"
            if r.returncode != want:
                raise AssertionError(f"sync guests {' '.join(args)} exited {r.returncode}, "
                                     f"expected {want}\nstdout:\n{r.stdout[-6000:]}\n"
                                     f"stderr:\n{r.stderr[-3000:]}")
            return json.loads(r.stdout)

        def changes(doc, ctid):
            g = [x for x in doc["guests"] if x["guest"] == int(ctid)][0]
            return [f"{a['feature']}: {a['what']} {a['detail']}" for a in g["actions"]
                    if a["changed"]]

        def inside(ctid, *argv):
            return guests[ctid].run(list(argv))

        # 1. The CA first, as an operator bootstraps one.
        print("1. step-ca in LXC 103", flush=True)
        doc = sync("103", "--no-health")
        check(doc["ok"] and any("initialise the CA" in c for c in changes(doc, "103")),
              "step-ca is installed and initialised: " + "; ".join(changes(doc, "103")))
        check(inside("103", "systemctl", "is-active", "step-ca").stdout.strip() == "active",
              "step-ca runs under systemd")
        root_path = os.path.join(guests["103"].rootfs_path(), "etc/step-ca/certs/root_ca.crt")
        fingerprint = run(["openssl", "x509", "-in", root_path, "-noout", "-fingerprint",
                           "-sha256"]).stdout.strip().split("=", 1)[1].replace(":", "").lower()
        edit("phoenix_hypervisor_config.json",
             lambda d: d["step_ca"].update(fingerprint=fingerprint))

        # The Docker host's certificate, from the guest CA, as sync certs would issue it.
        with open(os.path.join(etc, "phoenix_hypervisor_config.json")) as f:
            provisioner = json.load(f)["step_ca"]["provisioner_name"]
        certs = os.path.join(tmp, "docker-certs")
        os.makedirs(certs)
        run(switch.enter(step, "ca", "certificate", "docker-lab.internal.thinkheads.ai",
                         f"{certs}/docker-lab.crt", f"{certs}/docker-lab.key",
                         "--san", "docker-lab.internal.thinkheads.ai", "--san", "10.0.0.120",
                         "--ca-url", "https://10.0.0.10:9000", "--root", root_path,
                         "--provisioner", provisioner,
                         "--provisioner-password-file", password, "--force"),
            env=dict(env, STEPPATH=os.path.join(tmp, "step")))
        for name in ("docker-lab.crt", "docker-lab.key"):
            with open(os.path.join(certs, name)) as f:
                r = guests["120"].run(["sh", "-c", 'mkdir -p /etc/docker/ssl && cat > "$1" && '
                                       'chmod 0600 "$1"', "sh", "/etc/docker/ssl/" + name],
                                      input=f.read())
            assert r.returncode == 0, r.stderr

        # 2. Everything, with health checks.
        print("2. every guest, with its health checks", flush=True)
        doc = sync("101", "102", "103", "120")
        check(doc["ok"], "every guest converged and passed its health checks")
        for ctid in ("101", "102"):
            check(any(c.startswith("base_setup: install ") for c in changes(doc, ctid)) and
                  any(c.startswith("trusted_ca: write /usr/local/share/ca-certificates/")
                      for c in changes(doc, ctid)),
                  f"LXC {ctid}: base_setup installed its packages, trusted_ca the internal root")
            r = inside(ctid, "openssl", "verify", "-CAfile", "/etc/ssl/certs/ca-certificates.crt",
                       "/usr/local/share/ca-certificates/phoenix-root.crt")
            check(r.returncode == 0, f"LXC {ctid} trusts the guest CA's root (update-ca-certificates)")
        health = [a for g in doc["guests"] for a in g["actions"] if a["feature"] == "health"]
        check(all(a["what"] == "ok" for a in health) and
              any("step-ca answers" in a["detail"] for a in health),
              "health checks: " + "; ".join(a["detail"] for a in health))
        check(sum("step knows the CA" in a["detail"] for a in health) == 2,
              "step_cli: step configured against the guest CA in 101 and 102 (`step ca health`)")
        check(inside("101", "systemctl", "is-active", "nginx").stdout.strip() == "active" and
              inside("102", "curl", "-fsS", "http://localhost:8080/ping").stdout == "OK",
              "nginx runs in 101; Traefik answers its ping in 102")
        check(any(c.startswith("application script: run ") for c in changes(doc, "101")),
              "101's application script ran")
        check(any("the engine answers over TCP with mutual TLS" in a["detail"] for a in health),
              "LXC 120: Docker's engine answers on tcp://10.0.0.120:2376 with mutual TLS")
        ping = run(switch.enter("curl", "-sS", "--cacert", root_path, "--cert",
                                f"{certs}/docker-lab.crt", "--key", f"{certs}/docker-lab.key",
                                "https://10.0.0.120:2376/version"), check=False)
        check(ping.returncode == 0 and '"ApiVersion"' in ping.stdout,
              "from Phoenix's side too, with the client certificate: " + ping.stdout[:80])
        anon = run(switch.enter("curl", "-sS", "--cacert", root_path,
                                "https://10.0.0.120:2376/version"), check=False)
        check(anon.returncode != 0, "and without a client certificate the engine refuses")
        log = inside("101", "cat", "/var/log/phoenix/application_script.log").stdout
        check(log.startswith("$ /usr/local/lib/phoenix/") and log.endswith("exit 0\n"),
              "its output is kept in /var/log/phoenix/application_script.log")

        # 3. Converged: nothing to do.
        print("3. a second run", flush=True)
        doc = sync("101", "102", "103", "120")
        check(not doc["changed"] and all(changes(doc, c) == [] for c in guests),
              "a second run changes nothing")

        # 4. Drift by hand, put back.
        print("4. drift by hand", flush=True)
        inside("101", "systemctl", "stop", "nginx")
        inside("101", "sh", "-c", "echo Europe/Paris > /etc/timezone")
        inside("101", "ln", "-s", "/etc/nginx/sites-available/default",
               "/etc/nginx/sites-enabled/default")
        inside("102", "rm", "/usr/local/bin/traefik")
        doc = sync("101", "102", "103", "120")
        got = {c: changes(doc, c) for c in guests}
        check(any(c.startswith("base_setup: write /etc/timezone") for c in got["101"]) and
              "nginx_gateway: remove /etc/nginx/sites-enabled/default" in got["101"] and
              any(c.startswith("nginx_gateway: start nginx") for c in got["101"]),
              "101: the time zone, the default site and the stopped nginx put back: "
              + "; ".join(got["101"]))
        check([c.split(" (")[0] for c in got["102"]] ==
              ["traefik: write /usr/local/bin/traefik",
               "traefik: restart traefik"] and got["103"] == [] and got["120"] == [],
              "102: the binary put back and Traefik restarted for it; 103 untouched: "
              + "; ".join(got["102"]))
        check(inside("101", "systemctl", "is-active", "nginx").stdout.strip() == "active",
              "nginx runs again")

        # 5. A new application script runs once.
        print("5. a changed application script", flush=True)
        script = os.path.join(estate, "bin", "phoenix_hypervisor_lxc_101.sh")
        with open(script, "a") as f:
            f.write("echo changed\n")
        doc = sync("101")
        check(sum(c.startswith("application script: run ") for c in changes(doc, "101")) == 1,
              "the changed script ran once")
        doc = sync("101")
        check(changes(doc, "101") == [], "and not again")
        print("features: passed")
        return 0
    except Skip as e:
        if os.environ.get("CI") == "true":
            print(f"FAILED: {e} (CI=true: nothing is skipped)", file=sys.stderr)
            return 1
        print(f"skipped: {e}")
        return SKIP
    except Exception:
        traceback.print_exc()
        return 1
    finally:
        for g in guests.values():
            g.stop()
        if switch:
            switch.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
