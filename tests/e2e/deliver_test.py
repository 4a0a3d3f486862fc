#!/usr/bin/python3
"""`phoenix sync dns` and `phoenix sync gateways` with the real programs (issue: delivery).

  dns      Debian's dnsmasq on 127.0.0.1, a free port, reading the host's conf dir (a temporary
           directory standing for the host's /, through proxmox_api.host_root); dns_server.reload
           restarts it. After `sync dns`, a real DNS query (dig) for every guest and every routed
           host name of the example estate answers the expected address, routed names the Traefik
           guest's. A second run changes nothing and restarts nothing. A reload that fails leaves
           the previous records file byte for byte and dnsmasq answering the previous records;
           the next run with a working reload finishes the job.
  traefik  traefik.yml and dynamic_conf.yml delivered into the Traefik guest's local root and
           valid against the official schemas; an unchanged run writes nothing (inode and
           modification time kept) and restarts nothing; a dynamic-only change restarts nothing;
           a static change restarts exactly once; a failed restart puts the previous static file
           back.
  gateway  Debian's nginx in a gateway "guest" (its own network and mount namespaces, with the
           guest's /etc/nginx from its local root) and a backend standing in for Traefik at the
           Traefik guest's address (another network namespace, joined by a veth pair). The site
           is delivered exactly as rendered (listen 443, proxy_pass to Traefik), tested with
           `nginx -t` and reloaded; an HTTPS request by host name, with a test root CA as the only
           trust anchor, reaches the backend through it. A second run reloads nothing. A site
           that fails `nginx -t` (the renamed gateway's certificate does not exist yet) is
           refused: the previous site is back byte for byte, and the same request still succeeds.

Usage: deliver_test.py PHOENIX ESTATE SPECS CASE. The gateway case needs root (namespaces); every
case needs its programs (dnsmasq, dig, nginx, openssl, unshare, nsenter, ip). Without them it
exits 77 (CTest's skip), or fails under CI=true. Every process, namespace and file it creates is
removed even when a check fails.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

SKIP = 77
HERE = os.path.dirname(os.path.abspath(__file__))
LAB = os.path.join(HERE, "..", "tools", "deliver_lab.py")
CHECK_SCHEMA = os.path.join(HERE, "..", "tools", "check_schema.py")
PY = sys.executable or "/usr/bin/python3"


class Skip(Exception):
    pass


def run(argv, *, check=True, timeout=120):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    if check and r.returncode != 0:
        raise AssertionError(f"{argv} exited {r.returncode}\nstdout:\n{r.stdout}\n"
                             f"stderr:\n{r.stderr}")
    return r


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"  ok: {what}")


def poll(predicate, deadline_s, what):
    end = time.monotonic() + deadline_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= end:
            raise AssertionError(f"timed out after {deadline_s} s waiting for {what}")
        time.sleep(0.1)


def need_programs(*names):
    for n in names:
        if not shutil.which(n, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"):
            raise Skip(f"{n} is not installed (scripts/install-deps.sh installs it)")


def which(name):
    return shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


def free_port():
    """A port free for both UDP and TCP on 127.0.0.1 (the kernel's choice for port 0)."""
    import socket
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            with socket.socket() as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise AssertionError("no free port")


class Estate:
    """A copy of the example estate in a temporary directory, edited through its JSON."""

    def __init__(self, source, tmp):
        self.root = os.path.join(tmp, "estate")
        shutil.copytree(source, self.root)
        self.etc = os.path.join(self.root, "etc")

    def path(self, name):
        return os.path.join(self.etc, name)

    def load(self, name):
        with open(self.path(name)) as f:
            return json.load(f)

    def save(self, name, doc):
        with open(self.path(name), "w") as f:
            json.dump(doc, f, indent=2)

    def edit_platform(self, fn):
        doc = self.load("phoenix_hypervisor_config.json")
        fn(doc)
        self.save("phoenix_hypervisor_config.json", doc)

    def edit_lxcs(self, fn):
        doc = self.load("phoenix_lxc_configs.json")
        fn(doc["lxc_configs"])
        self.save("phoenix_lxc_configs.json", doc)

    def guests(self):
        out = [(int(k), v) for k, v in self.load("phoenix_lxc_configs.json")["lxc_configs"].items()]
        out += [(int(v["vmid"]), v) for v in self.load("phoenix_vm_configs.json")["vms"]]
        return out


def ip_of(guest):
    ip = guest.get("network_config", {}).get("ip", "")
    return ip.split("/")[0] if "/" in ip else None


def with_feature(estate, feature):
    return [(i, g) for i, g in estate.guests() if feature in g.get("features", [])][0]


def expected_records(estate):
    """Every name DNS must answer, worked out from the estate's JSON, independently of Phoenix:
    each guest's name, and every routed name (traefik_service, the deployed stacks' Host rules,
    Portainer's host name) answering the Traefik guest's address."""
    platform = estate.load("phoenix_hypervisor_config.json")
    domain = platform["domain_name"]
    traefik_ip = ip_of(with_feature(estate, "traefik")[1])
    routed = set()
    for _, g in estate.guests():
        if g.get("traefik_service") and not g.get("is_template"):
            routed.add(f"{g['traefik_service']['name'].lower()}.{domain}")
        for entry in g.get("docker_stacks", []):
            name = entry if isinstance(entry, str) else entry["name"]
            with open(os.path.join(estate.root, "stacks", name, "phoenix.json")) as f:
                envs = json.load(f)["environments"]
            env = entry.get("environment") if isinstance(entry, dict) else None
            env = env or ("production" if "production" in envs else next(iter(envs)))
            for svc in envs[env].get("services", {}).values():
                for label in svc.get("traefik_labels", []):
                    routed.update(h.lower() for h in re.findall(r"Host\(`([^`]+)`\)", label))
    if platform.get("portainer_api", {}).get("portainer_hostname"):
        routed.add(platform["portainer_api"]["portainer_hostname"].lower())
    records = {h: traefik_ip for h in routed}
    for _, g in estate.guests():
        ip = ip_of(g)
        if ip and not g.get("is_template"):
            records.setdefault(f"{g['name'].lower()}.{domain}", ip)
    return records, routed, traefik_ip


def phoenix_json(phoenix, estate, *args, want_exit=0):
    r = run([phoenix, "-C", estate.etc, "--output", "json", *args], check=False)
    if r.returncode != want_exit:
        raise AssertionError(f"phoenix {' '.join(args)} exited {r.returncode}, expected "
                             f"{want_exit}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}")
    return json.loads(r.stdout)


def steps(doc, name):
    for d in doc["deliveries"]:
        if d["name"] == name:
            return [s["what"] for s in d["steps"]]
    raise AssertionError(f"no delivery {name} in {doc}")


def error_of(doc, name):
    return [d for d in doc["deliveries"] if d["name"] == name][0]["error"] or ""


def stat_key(path):
    st = os.stat(path)
    return (st.st_ino, st.st_mtime_ns)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def count_lines(path):
    try:
        with open(path) as f:
            return len(f.readlines())
    except FileNotFoundError:
        return 0


# ---- dns ---------------------------------------------------------------------------------------

def test_dns(phoenix, source, specs, tmp):
    need_programs("dnsmasq", "dig")
    estate = Estate(source, tmp)
    host_root = os.path.join(tmp, "host")
    conf_dir = os.path.join(host_root, "etc", "dnsmasq.d")
    os.makedirs(conf_dir)
    state = os.path.join(tmp, "dnsmasq")
    os.makedirs(state)
    port = free_port()
    argv = [which("dnsmasq"), "--conf-file=/dev/null", f"--conf-dir={conf_dir}/,*.conf",
            "--no-resolv", "--no-hosts", "--bind-interfaces", "--listen-address=127.0.0.1",
            f"--port={port}", f"--pid-file={state}/dnsmasq.pid"]
    if os.geteuid() == 0:
        argv += ["--user=nobody", "--group=nogroup"]
    with open(os.path.join(state, "args.json"), "w") as f:
        json.dump({"argv": argv, "port": port}, f)
    restart = [PY, LAB, "dnsmasq-restart", state]

    def set_reload(cmd):
        def edit(doc):
            doc["proxmox_api"]["host_root"] = host_root
            doc["dns_server"]["reload"] = cmd
        estate.edit_platform(edit)

    def pid():
        with open(os.path.join(state, "dnsmasq.pid")) as f:
            return int(f.read())

    def resolve(name):
        r = run(["dig", "@127.0.0.1", "-p", str(port), name, "A", "+short", "+time=2",
                 "+tries=2"], check=False)
        return r.stdout.split()

    try:
        run(restart)  # dnsmasq starts with no records
        records, routed, traefik_ip = expected_records(estate)
        check(len(records) >= 8 and len(routed) >= 5,
              f"{len(records)} names expected, {len(routed)} of them routed")
        check(resolve(sorted(records)[0]) == [], "before sync dns, dnsmasq knows no record")

        set_reload(restart)
        doc = phoenix_json(phoenix, estate, "sync", "dns")
        check(steps(doc, "dns") == ["write", "run"], "sync dns writes the records, then reloads")
        records_file = os.path.join(conf_dir, "00-phoenix-internal.conf")
        delivered = read(records_file)
        check(delivered.count(b"\naddress=/") == len(records),
              f"the records file holds exactly the {len(records)} expected records")
        for name, ip in sorted(records.items()):
            got = resolve(name)
            check(got == [ip], f"{name} -> {ip}" + (" (Traefik)" if name in routed else "")
                  + ("" if got == [ip] else f" (got {got})"))
        check(all(records[n] == traefik_ip for n in routed), "every routed name is Traefik's")

        # Idempotent: nothing written, nothing reloaded.
        before = (stat_key(records_file), pid())
        doc = phoenix_json(phoenix, estate, "sync", "dns")
        check(steps(doc, "dns") == ["unchanged"] and doc["changed"] is False,
              "a second sync dns changes nothing")
        check((stat_key(records_file), pid()) == before,
              "the records file keeps its inode and mtime, dnsmasq was not restarted")

        # A record edited by hand shows in plan --files (the guests' files are read from
        # directories standing for them), and sync dns puts it back.
        def guest_roots(lxcs):
            for ctid in ("101", "102", "801"):
                lxcs[ctid]["local_root"] = os.path.join(tmp, "guests", ctid)
        estate.edit_lxcs(guest_roots)
        text = read(records_file).decode()
        line = [x for x in text.splitlines() if x.startswith("address=/qdrant.")][0]
        with open(records_file, "w") as f:
            f.write(text.replace(line, "address=/qdrant.internal.thinkheads.ai/10.9.9.9"))

        def dns_drift():
            doc = phoenix_json(phoenix, estate, "plan", "--files")
            return [d for d in doc["files"] if d["where"] == "the node"]
        drift = dns_drift()
        check(len(drift) == 1 and
              "-address=/qdrant.internal.thinkheads.ai/10.9.9.9" in drift[0]["diff"] and
              "+" + line in drift[0]["diff"],
              "plan --files shows the record edited by hand: " + repr(drift and drift[0]["diff"]))
        doc = phoenix_json(phoenix, estate, "sync", "dns")
        check(steps(doc, "dns") == ["write", "run"] and dns_drift() == [] and
              resolve("qdrant.internal.thinkheads.ai") == [traefik_ip],
              "sync dns puts it back, dnsmasq answers it again, and plan --files shows nothing")

        # A reload that fails: the previous file comes back byte for byte.
        def rename_ca(lxcs):
            lxcs["103"]["name"] = "Step-CA-Two"
        estate.edit_lxcs(rename_ca)
        set_reload(["false"])
        old_pid = pid()
        doc = phoenix_json(phoenix, estate, "sync", "dns", want_exit=2)
        check(doc["ok"] is False, "sync dns with a failing reload exits 2")
        check(error_of(doc, "dns").startswith(
            "reloading the DNS server failed: `false` exited with 1; the previous records file "
            "/etc/dnsmasq.d/00-phoenix-internal.conf is back in place"),
            "the error names the failed reload and the restored file")
        check(steps(doc, "dns") == ["write", "run", "restore", "run"],
              "steps: write, reload (failed), restore, reload again")
        check(read(records_file) == delivered, "the previous records file is back byte for byte")
        check(pid() == old_pid and resolve("step-ca.internal.thinkheads.ai") == ["10.0.0.10"]
              and resolve("step-ca-two.internal.thinkheads.ai") == [],
              "dnsmasq still answers the previous records")

        # The next run with a working reload finishes the job.
        set_reload(restart)
        doc = phoenix_json(phoenix, estate, "sync", "dns")
        check(steps(doc, "dns") == ["write", "run"] and
              resolve("step-ca-two.internal.thinkheads.ai") == ["10.0.0.10"] and
              resolve("step-ca.internal.thinkheads.ai") == [],
              "the next sync dns delivers the new records")
    finally:
        run([PY, LAB, "dnsmasq-stop", state], check=False)


# ---- traefik -----------------------------------------------------------------------------------

def test_traefik(phoenix, source, specs, tmp):
    estate = Estate(source, tmp)
    guests = os.path.join(tmp, "guests")
    restarts = os.path.join(tmp, "traefik-restarts")
    tests = os.path.join(tmp, "nginx-tests")
    reloads = os.path.join(tmp, "nginx-reloads")

    def platform(doc):
        doc["traefik"] = {"restart": [PY, LAB, "count", restarts]}
        doc["nginx_gateway"] = {"test": [PY, LAB, "count", tests],
                                "reload": [PY, LAB, "count", reloads]}
    estate.edit_platform(platform)

    if not which("pct"):
        r = run([phoenix, "-C", estate.etc, "sync", "gateways"], check=False)
        check(r.returncode == 2 and "reading /etc/traefik/dynamic/dynamic_conf.yml in LXC 102 "
              "through pct (this node): cannot run pct" in r.stderr and
              "run it on the node, or set proxmox_api.host_ssh" in r.stderr,
              "without local_root, Phoenix reaches the guests through pct, which is not here "
              "(exit 2, the error says how to fix it)")

    def roots(lxcs):
        for ctid in ("101", "102"):
            lxcs[ctid]["local_root"] = os.path.join(guests, ctid)
    estate.edit_lxcs(roots)
    static = os.path.join(guests, "102", "etc", "traefik", "traefik.yml")
    dynamic = os.path.join(guests, "102", "etc", "traefik", "dynamic", "dynamic_conf.yml")
    site = os.path.join(guests, "101", "etc", "nginx", "sites-available", "phoenix-gateway")

    def schemas():
        run([PY, CHECK_SCHEMA, os.path.join(specs, "traefik-v3.json"), static])
        run([PY, CHECK_SCHEMA, os.path.join(specs, "traefik-v3-file-provider.json"), dynamic])
        return True

    doc = phoenix_json(phoenix, estate, "sync", "gateways")
    check(steps(doc, "traefik") == ["write", "write", "run"], "first sync writes both, restarts")
    check(steps(doc, "gateway") == ["write", "link", "run", "run"],
          "the gateway is written, enabled (its link in sites-enabled), tested, reloaded")
    check(os.readlink(os.path.join(guests, "101", "etc", "nginx", "sites-enabled",
                                   "phoenix-gateway")) ==
          "/etc/nginx/sites-available/phoenix-gateway", "the link names the site in the guest")
    check(count_lines(restarts) == 1, "Traefik restarted once")
    check(schemas(), "traefik.yml and dynamic_conf.yml validate against the official schemas")
    check(os.stat(static).st_mode & 0o777 == 0o644, "the files are mode 0644")

    before = {p: stat_key(p) for p in (static, dynamic, site)}
    doc = phoenix_json(phoenix, estate, "sync", "gateways")
    check(doc["changed"] is False and steps(doc, "traefik") == ["unchanged", "unchanged"],
          "a second sync changes nothing")
    check({p: stat_key(p) for p in before} == before, "no file was written (inode, mtime)")
    check((count_lines(restarts), count_lines(tests), count_lines(reloads)) == (1, 1, 1),
          "nothing was restarted, tested or reloaded")

    # Drift: plan --files reads the delivered files where they are.
    doc = phoenix_json(phoenix, estate, "plan", "--files", "101", "102")
    check(doc["summary"]["update"] == 0 and doc["summary"]["create"] == 0 and doc["files"] == [],
          "plan --files on converged guests shows nothing")
    with open(dynamic, "a") as f:
        f.write("# edited by hand\n")
    doc = phoenix_json(phoenix, estate, "plan", "--files", "101", "102")
    drift = doc["files"]
    check(doc["summary"]["update"] == 1 and len(drift) == 1 and
          drift[0]["path"] == "/etc/traefik/dynamic/dynamic_conf.yml" and
          drift[0]["diff"][-1] == "-# edited by hand",
          "a file changed by hand in the Traefik guest shows in plan --files with its lines: "
          + repr(drift[0]["diff"][-1:]))
    doc = phoenix_json(phoenix, estate, "sync", "gateways")
    check(steps(doc, "traefik")[0] == "write", "sync gateways puts it back")
    doc = phoenix_json(phoenix, estate, "plan", "--files", "101", "102")
    check(doc["files"] == [] and doc["summary"]["update"] == 0, "and plan --files is empty again")
    before = {p: stat_key(p) for p in (static, dynamic, site)}

    # A dynamic-only change: Traefik's file provider loads it, no restart.
    def new_port(lxcs):
        lxcs["103"]["traefik_service"]["port"] = 9001
    estate.edit_lxcs(new_port)
    old_dynamic = read(dynamic)
    doc = phoenix_json(phoenix, estate, "sync", "gateways")
    check(steps(doc, "traefik") == ["write", "unchanged"], "a route change writes the dynamic "
          "file only")
    check(read(dynamic) != old_dynamic and b"10.0.0.10:9001" in read(dynamic),
          "the dynamic file has the new backend")
    check(stat_key(static) == before[static] and count_lines(restarts) == 1,
          "the static file is untouched and Traefik was not restarted")

    # A static change (the Swarm provider's endpoint): exactly one restart.
    estate.edit_platform(lambda d: d.update(docker_api={"url": "unix:///var/run/docker.sock"}))
    doc = phoenix_json(phoenix, estate, "sync", "gateways")
    check(steps(doc, "traefik") == ["unchanged", "write", "run"], "a static change writes the "
          "static file and restarts")
    check(count_lines(restarts) == 2, "Traefik restarted exactly once more")
    check(schemas(), "both files still validate against the official schemas")

    # A failed restart: the previous static file comes back.
    good_static = read(static)
    estate.edit_platform(lambda d: d.update(docker_api={"url": "unix:///run/docker.sock"},
                                            traefik={"restart": ["false"]}))
    doc = phoenix_json(phoenix, estate, "sync", "gateways", want_exit=2)
    check(error_of(doc, "traefik").startswith(
        "restarting Traefik failed: `false` exited with 1; the previous static configuration "
        "/etc/traefik/traefik.yml is back in place"), "the error names the failed restart")
    check(read(static) == good_static, "the previous static file is back byte for byte")


# ---- gateway -----------------------------------------------------------------------------------

def openssl(*args):
    run(["openssl", *args])


def make_pki(d, domain):
    """A test root CA, a server certificate for the gateway's names, and an unrelated root."""
    os.makedirs(d)
    for name in ("root", "other"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                f"/CN=Phoenix test {name} CA", "-keyout", f"{d}/{name}.key", "-out",
                f"{d}/{name}.crt", "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={domain}",
            "-keyout", f"{d}/server.key", "-out", f"{d}/server.csr")
    with open(f"{d}/ext.cnf", "w") as f:
        f.write(f"subjectAltName=DNS:{domain},DNS:*.{domain}\n"
                "extendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
    openssl("x509", "-req", "-in", f"{d}/server.csr", "-CA", f"{d}/root.crt", "-CAkey",
            f"{d}/root.key", "-CAcreateserial", "-days", "2", "-extfile", f"{d}/ext.cnf",
            "-out", f"{d}/server.crt")


def issue(d, name, sans, ca="root"):
    """A server certificate `d`/`name`.crt (and .key) for `sans`, issued by `ca` of make_pki."""
    openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={sans[0]}",
            "-keyout", f"{d}/{name}.key", "-out", f"{d}/{name}.csr")
    with open(f"{d}/{name}.cnf", "w") as f:
        f.write("subjectAltName=" + ",".join(f"DNS:{n}" for n in sans) + "\n"
                "extendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
    openssl("x509", "-req", "-in", f"{d}/{name}.csr", "-CA", f"{d}/{ca}.crt", "-CAkey",
            f"{d}/{ca}.key", "-CAcreateserial", "-days", "2", "-extfile", f"{d}/{name}.cnf",
            "-out", f"{d}/{name}.crt")


class Namespaces:
    """Two network namespaces joined by a veth pair: the gateway guest's (also with its own
    mount namespace, where its local root's /etc/nginx is the guest's /etc/nginx) and the
    Traefik guest's. Each is held by a process that exits when its standard input closes, so the
    namespaces go away with this test even when it is killed."""

    def __init__(self):
        self.procs = []
        self.veth = None

    def start(self, nginx_etc, gateway_ip, traefik_ip, traefik_mount=False, traefik_extra=()):
        """traefik_mount gives the Traefik side a mount namespace of its own too; traefik_extra
        are more addresses there (backends behind Traefik)."""
        self.gw = self.hold(["unshare", "--net", "--mount", "--propagation", "private", "--",
                             "sh", "-c", 'ip link set lo up && mount --bind "$1" /etc/nginx && '
                             'echo ready && exec cat', "sh", nginx_etc])
        self.tr = self.hold(["unshare", "--net"]
                            + (["--mount", "--propagation", "private"] if traefik_mount else [])
                            + ["--", "sh", "-c", "ip link set lo up && echo ready && exec cat"])
        self.veth = f"phxg{self.gw.pid}"[:15]
        peer = f"phxt{self.gw.pid}"[:15]
        run(["ip", "link", "add", self.veth, "type", "veth", "peer", "name", peer])
        run(["ip", "link", "set", self.veth, "netns", str(self.gw.pid)])
        run(["ip", "link", "set", peer, "netns", str(self.tr.pid)])
        for holder, dev, ips in ((self.gw, self.veth, [gateway_ip]),
                                 (self.tr, peer, [traefik_ip, *traefik_extra])):
            for ip in ips:
                run(self.enter(holder, "ip", "addr", "add", f"{ip}/24", "dev", dev))
            run(self.enter(holder, "ip", "link", "set", dev, "up"))

    def hold(self, argv):
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.procs.append(p)
        line = p.stdout.readline().strip()
        if line != "ready":
            raise AssertionError(f"{argv} did not start (root is needed)")
        return p

    @staticmethod
    def enter(holder, *argv, mount=False):
        return ["nsenter", "--target", str(holder.pid), "--net"] + (["--mount"] if mount else []) \
            + list(argv)

    def close(self):
        for p in self.procs:
            try:
                p.stdin.close()
            except OSError:
                pass
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if self.veth:  # normally gone with its namespace already
            run(["ip", "link", "del", self.veth], check=False)


class Gateway:
    """The gateway guest's side of a test: its /etc/nginx in its local root with Debian's layout,
    the certificate and key the rendered site names (issued by a test root, in `pki`), and nginx
    itself, started in the gateway's namespaces."""

    def __init__(self, phoenix, estate, tmp, domain):
        self.guests = os.path.join(tmp, "guests")
        self.nginx_etc = os.path.join(self.guests, "101", "etc", "nginx")
        self.work = os.path.join(tmp, "nginx-run")
        self.errlog = os.path.join(self.work, "error.log")
        for d in ("sites-available", "sites-enabled", "ssl"):
            os.makedirs(os.path.join(self.nginx_etc, d))
        os.makedirs(self.work)
        run([phoenix, "-C", estate.etc, "render", "--out", os.path.join(tmp, "render")])
        with open(os.path.join(tmp, "render", "nginx", "phoenix-gateway.conf")) as f:
            self.rendered = f.read()
        cert = re.search(r"^\s*ssl_certificate\s+(\S+);", self.rendered, re.M).group(1)
        key = re.search(r"^\s*ssl_certificate_key\s+(\S+);", self.rendered, re.M).group(1)
        self.pki = os.path.join(tmp, "pki")
        make_pki(self.pki, domain)
        shutil.copy(f"{self.pki}/server.crt", os.path.join(self.guests, "101", cert.lstrip("/")))
        shutil.copy(f"{self.pki}/server.key", os.path.join(self.guests, "101", key.lstrip("/")))
        # Debian's layout: nginx.conf includes sites-enabled/*, which links the site Phoenix
        # writes into sites-available.
        with open(os.path.join(self.nginx_etc, "nginx.conf"), "w") as f:
            f.write(f"pid {self.work}/nginx.pid;\nerror_log {self.errlog} notice;\nevents {{}}\n"
                    "http {\n  access_log off;\n"
                    + "".join(f"  {k}_temp_path {self.work}/{k};\n"
                              for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
                    + "  include /etc/nginx/sites-enabled/*;\n}\n")

    def start(self, ns, procs):
        nginx = subprocess.Popen(ns.enter(ns.gw, "nginx", "-g", "daemon off;", "-e", self.errlog,
                                          mount=True))
        procs.append(nginx)
        poll(lambda: os.path.exists(f"{self.work}/nginx.pid"), 10, "nginx to start")
        os.symlink("/etc/nginx/sites-available/phoenix-gateway",
                   os.path.join(self.nginx_etc, "sites-enabled", "phoenix-gateway"))
        cmd = ns.enter(ns.gw, "nginx", mount=True)
        # nginx_gateway of phoenix_hypervisor_config.json: test and reload in the namespaces.
        return {"test": cmd + ["-t", "-e", self.errlog],
                "reload": cmd + ["-s", "reload", "-e", self.errlog]}

    def get(self, ns, host, cafile=None, path="/"):
        return run(ns.enter(ns.gw, PY, LAB, "https-get", cafile or f"{self.pki}/root.crt", host,
                            "443", "127.0.0.1", path), check=False)

    def reloads(self):
        with open(self.errlog) as f:
            return f.read().count("(SIGHUP) received")


def stop_all(procs, ns):
    for p in reversed(procs):
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    ns.close()


def test_gateway(phoenix, source, specs, tmp):
    need_programs("nginx", "openssl", "unshare", "nsenter", "ip")
    if os.geteuid() != 0:
        raise Skip("the gateway test makes network and mount namespaces: it needs root")
    os.chmod(tmp, 0o755)  # nginx's workers (nobody) reach their temporary directories
    estate = Estate(source, tmp)
    domain = estate.load("phoenix_hypervisor_config.json")["domain_name"]
    gateway_ip = ip_of(with_feature(estate, "nginx_gateway")[1])
    traefik_ip = ip_of(with_feature(estate, "traefik")[1])
    gw = Gateway(phoenix, estate, tmp, domain)
    guests, nginx_etc, pki = gw.guests, gw.nginx_etc, gw.pki
    rendered = gw.rendered

    ns = Namespaces()
    procs = []
    try:
        ns.start(nginx_etc, gateway_ip, traefik_ip)
        backend = subprocess.Popen(ns.enter(ns.tr, PY, LAB, "backend", traefik_ip, "80"),
                                   stdout=subprocess.PIPE, text=True)
        procs.append(backend)
        check(backend.stdout.readline().strip() == "ready",
              f"a backend stands in for Traefik on {traefik_ip}:80")
        nginx_gateway = gw.start(ns, procs)

        def platform(doc):
            doc["nginx_gateway"] = nginx_gateway
            doc["traefik"] = {"restart": ["true"]}
        estate.edit_platform(platform)

        def roots(lxcs):
            for ctid in ("101", "102"):
                lxcs[ctid]["local_root"] = os.path.join(guests, ctid)
        estate.edit_lxcs(roots)

        host = f"qdrant.{domain}"

        def get(cafile=f"{pki}/root.crt"):
            return gw.get(ns, host, cafile)

        def reached():
            r = get()
            return r.returncode == 0 and r.stdout.startswith("200\n") and r
        reloads = gw.reloads

        check(get().returncode != 0, "before sync gateways, nothing answers HTTPS")
        doc = phoenix_json(phoenix, estate, "sync", "gateways")
        check(steps(doc, "gateway") == ["write", "run", "run"],
              "sync gateways writes the site, runs nginx -t, reloads")
        site = os.path.join(nginx_etc, "sites-available", "phoenix-gateway")
        check(read(site) == rendered.encode(), "the site is delivered exactly as rendered")
        r = poll(reached, 15, "the gateway to answer HTTPS")
        check(f"backend host={host} addr={traefik_ip}" in r.stdout,
              f"https://{host}/ (the test root as the only trust anchor) reaches the backend at "
              f"{traefik_ip} with its host name")
        other = get(f"{pki}/other.crt")
        check(other.returncode != 0 and "CERTIFICATE_VERIFY_FAILED" in other.stderr,
              "with another root as the trust anchor, the request is refused")
        check(reloads() == 1, "nginx reloaded once")

        doc = phoenix_json(phoenix, estate, "sync", "gateways")
        check(steps(doc, "gateway") == ["unchanged"] and reloads() == 1,
              "a second sync tests and reloads nothing")

        # The gateway renamed before its new certificate exists: nginx -t refuses the site.
        good_site = read(site)

        def rename(lxcs):
            lxcs["101"]["name"] = "Nginx-Edge"
        estate.edit_lxcs(rename)
        doc = phoenix_json(phoenix, estate, "sync", "gateways", want_exit=2)
        error = error_of(doc, "gateway")
        check(error.startswith("the new gateway site failed its test: `nsenter") and
              "/etc/nginx/ssl/nginx-edge.crt is not in the guest" in error and
              "the previous site /etc/nginx/sites-available/phoenix-gateway is back in place"
              in error, "the error names nginx -t, the missing certificate and the restored site")
        check(steps(doc, "gateway") == ["write", "run", "restore"],
              "steps: write, nginx -t (failed), restore; no reload")
        check(read(site) == good_site, "the previous site is back byte for byte")
        r = reached()
        check(bool(r) and f"backend host={host}" in r.stdout and reloads() == 1,
              "the same HTTPS request still reaches the backend; nginx was not reloaded")
    finally:
        stop_all(procs, ns)


# ---- routing through a real Traefik --------------------------------------------------------------

def traefik_binary():
    path = os.environ.get("PHOENIX_TRAEFIK") or os.path.join(
        os.environ.get("PHOENIX_CACHE_DIR") or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "phoenix"),
        "traefik-v3.6.12", "bin", "traefik")
    if not os.access(path, os.X_OK):
        raise Skip(f"no Traefik at {path} (scripts/build-traefik.sh builds it; PHOENIX_TRAEFIK "
                   "names it)")
    return path


def routes_of(render_dir):
    """{router host: backend URL} of the rendered dynamic_conf.yml."""
    import yaml
    with open(os.path.join(render_dir, "traefik", "dynamic_conf.yml")) as f:
        http = yaml.safe_load(f)["http"]
    out = {}
    for router in http["routers"].values():
        host = re.fullmatch(r"Host\(`([^`]+)`\)", router["rule"]).group(1)
        out[host] = http["services"][router["service"]]["loadBalancer"]["servers"][0]["url"]
    return out


def test_routing(phoenix, source, specs, tmp):
    need_programs("nginx", "openssl", "unshare", "nsenter", "ip", "chroot", "mount")
    if os.geteuid() != 0:
        raise Skip("the routing test makes network and mount namespaces: it needs root")
    traefik = traefik_binary()
    os.chmod(tmp, 0o755)
    estate = Estate(source, tmp)
    domain = estate.load("phoenix_hypervisor_config.json")["domain_name"]
    gateway_ip = ip_of(with_feature(estate, "nginx_gateway")[1])
    traefik_id, traefik_guest = with_feature(estate, "traefik")
    traefik_ip = ip_of(traefik_guest)
    ca_id, ca_guest = with_feature(estate, "step_ca")
    gw = Gateway(phoenix, estate, tmp, domain)
    routes = routes_of(os.path.join(tmp, "render"))

    # Two HTTPS backends behind Traefik, at the addresses of their routes: the CA's, with a
    # certificate of the internal (test) root, for its route's name and the name it gets later;
    # vLLM's, with one of another root, which Traefik's serversTransport must refuse.
    ca_host = f"{ca_guest['traefik_service']['name']}.{domain}"
    ca_url = routes[ca_host]
    vllm_host = [h for h, u in routes.items() if u.startswith("https://") and h != ca_host
                 and "portainer" not in h][0]
    vllm_url = routes[vllm_host]
    dash_host = f"{traefik_guest['traefik_service']['name']}.{domain}"
    check(ca_url.startswith("https://") and routes.get(dash_host, "").startswith("http://"),
          f"the rendered routes: {ca_host} -> {ca_url}, {vllm_host} -> {vllm_url}, "
          f"{dash_host} -> {routes.get(dash_host)} (Traefik's own API)")
    issue(gw.pki, "ca-backend", [ca_host, f"pki.{domain}"])
    issue(gw.pki, "vllm-backend", [vllm_host], ca="other")
    addr = lambda url: re.match(r"https?://([^:/]+):(\d+)", url).groups()

    # The Traefik guest: the internal root where the serversTransport reads it (sync certs puts
    # it there), and Traefik restarted in its namespaces, chrooted into its root.
    troot = os.path.join(gw.guests, str(traefik_id))
    os.makedirs(os.path.join(troot, "etc", "traefik", "certs"))
    shutil.copy(f"{gw.pki}/root.crt",
                os.path.join(troot, "etc", "traefik", "certs", "phoenix_root_ca.crt"))
    state = os.path.join(tmp, "traefik-state")
    os.makedirs(state)
    with open(os.path.join(state, "args.json"), "w") as f:
        json.dump({"root": troot, "binary": traefik, "ping_addr": "127.0.0.1",
                   "ping_port": 8080}, f)

    ns = Namespaces()
    procs = []
    try:
        ns.start(gw.nginx_etc, gateway_ip, traefik_ip, traefik_mount=True,
                 traefik_extra=[addr(ca_url)[0], addr(vllm_url)[0]])
        for name, url in (("ca-backend", ca_url), ("vllm-backend", vllm_url)):
            ip, port = addr(url)
            b = subprocess.Popen(ns.enter(ns.tr, PY, LAB, "backend", ip, port,
                                          f"{gw.pki}/{name}.crt", f"{gw.pki}/{name}.key"),
                                 stdout=subprocess.PIPE, text=True)
            procs.append(b)
            check(b.stdout.readline().strip() == "ready", f"an HTTPS backend listens on {url}")
        nginx_gateway = gw.start(ns, procs)
        restart = ns.enter(ns.tr, PY, LAB, "traefik-restart", state, mount=True)

        def platform(doc):
            doc["nginx_gateway"] = nginx_gateway
            doc["traefik"] = {"restart": restart}
        estate.edit_platform(platform)

        def roots(lxcs):
            for ctid in ("101", str(traefik_id)):
                lxcs[ctid]["local_root"] = os.path.join(gw.guests, ctid)
        estate.edit_lxcs(roots)

        def restarts():
            try:
                with open(os.path.join(state, "traefik.log")) as f:
                    return f.read().count("Traefik version")
            except FileNotFoundError:
                return 0

        def answer(host, path="/"):
            r = gw.get(ns, host, path=path)
            if r.returncode != 0:
                return None, r.stderr
            status, _, body = r.stdout.partition("\n")
            return status, body

        check(answer(ca_host)[0] is None, "before sync gateways, nothing answers HTTPS")
        doc = phoenix_json(phoenix, estate, "sync", "gateways")
        check(steps(doc, "traefik") == ["write", "write", "run"],
              "sync gateways writes traefik.yml and dynamic_conf.yml, then (re)starts Traefik")
        check(restarts() == 1, "Traefik started once, and answers its ping")

        status, body = poll(lambda: (lambda a: a[0] == "200" and a)(answer(ca_host)), 20,
                            f"https://{ca_host}/ to answer through nginx and Traefik")
        check(f"backend host={ca_host} addr={addr(ca_url)[0]}" in body,
              f"https://{ca_host}/ (the internal root as the only trust anchor) goes through "
              f"nginx and the real Traefik to the backend at {ca_url}, verified by the "
              f"serversTransport against the internal root")
        status, body = answer(dash_host, "/ping")
        check(status == "200" and body.strip() == "OK",
              f"https://{dash_host}/ping reaches Traefik's own API by its route")
        status, body = answer(vllm_host)
        check(status == "500",
              f"a backend whose certificate is not of the internal root is refused by Traefik "
              f"({vllm_host}: {status})")
        status, body = answer(f"nothing.{domain}")
        check(status == "404", "a host name without a route is Traefik's 404")

        doc = phoenix_json(phoenix, estate, "sync", "gateways")
        check(steps(doc, "traefik") == ["unchanged", "unchanged"] and restarts() == 1,
              "a second sync writes nothing and restarts nothing")

        # A route renamed: only dynamic_conf.yml changes. Traefik is not restarted; it reads the
        # file renamed into its watched directory.
        def rename(lxcs):
            lxcs[str(ca_id)]["traefik_service"]["name"] = "pki"
        estate.edit_lxcs(rename)
        doc = phoenix_json(phoenix, estate, "sync", "gateways")
        check(steps(doc, "traefik") == ["write", "unchanged"],
              "the renamed route writes dynamic_conf.yml only")
        poll(lambda: answer(f"pki.{domain}")[0] == "200", 20,
             f"https://pki.{domain}/ to answer after the file provider reloads")
        check(answer(ca_host)[0] == "404" and restarts() == 1,
              f"the new name answers and {ca_host} no longer does, without a restart")

        # A static change (the Swarm provider's endpoint): Traefik restarts once, and routes.
        estate.edit_platform(lambda d: d.update(docker_api={"url": "unix:///var/run/docker.sock"}))
        doc = phoenix_json(phoenix, estate, "sync", "gateways")
        check(steps(doc, "traefik") == ["unchanged", "write", "run"] and restarts() == 2,
              "a static change writes traefik.yml and restarts Traefik exactly once")
        # Traefik answers its ping before its file provider has loaded the routes: poll.
        poll(lambda: answer(f"pki.{domain}")[0] == "200", 20,
             "the route to answer again after the restart")
    finally:
        run([PY, LAB, "traefik-stop", state], check=False)
        stop_all(procs, ns)


CASES = {"dns": test_dns, "traefik": test_traefik, "gateway": test_gateway,
         "routing": test_routing}


def main():
    if len(sys.argv) != 5 or sys.argv[4] not in CASES:
        print(__doc__, file=sys.stderr)
        return 2
    phoenix, source, specs, case = sys.argv[1:]
    tmp = tempfile.mkdtemp(prefix=f"phoenix-deliver-{case}-")
    print(f"{case}:")
    try:
        CASES[case](os.path.abspath(phoenix), source, specs, tmp)
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
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{case}: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
