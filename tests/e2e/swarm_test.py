#!/usr/bin/python3
"""Stacks and the swarm against the real Docker engine (issue: Docker Swarm).

  equivalence  the same compose file deployed by `docker stack deploy` and by `phoenix sync
               stack` gives the same service specs
  idempotence  a second sync of an unchanged stack makes no mutating request, and its request
               count does not grow with the number of services; changed files become new configs
               and the old ones are removed; services dropped from the compose file are pruned
  rollback     an update whose new tasks fail is rolled back and reported (exit 2)
  unhealthy    a service whose healthcheck fails is not reported as running: the deploy waits
               until its deadline and names the failing task
  init         `phoenix swarm init` on an engine with no swarm (a dockerd in its own network
               namespace) creates the swarm, labels the manager and creates traefik-public
  tls          the engine over TCP with mutual TLS (a dockerd in its own network namespace with a
               throw-away CA): reachable with the estate's ca/cert/key files; refused with a
               client certificate from another CA
  core         Portainer (stage 3) as a stack: the server on the manager, published on the
               manager's port, the agent global on nodes labelled for it; re-syncing is a no-op
  two_node     a second dockerd in its own network namespace is joined as a worker by
               `phoenix swarm join`, gets its node labels, runs a service constrained onto it, and
               that service answers from the manager across the overlay network

Usage: swarm_test.py PHOENIX [TEST...]. Needs root and what scripts/docker-env.sh prepares;
without them it exits 77 (CTest's skip), or fails under CI=true. Every stack, network, config,
node and namespace it creates has a unique name and is removed even when a test fails.
"""
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import netns_engine  # noqa: E402

SKIP = 77
IMAGE = "phoenix-test/busybox:1"
NS_LABEL = "com.docker.stack.namespace"


def run(argv, *, check=True, timeout=300, input=None):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input)
    if check and r.returncode != 0:
        raise AssertionError(f"{argv} exited {r.returncode}\nstdout:\n{r.stdout}\n"
                             f"stderr:\n{r.stderr}")
    return r


def docker(*args, check=True, timeout=120):
    return run(["docker", *args], check=check, timeout=timeout)


def docker_json(*args):
    return json.loads(docker(*args).stdout)


def poll(predicate, deadline_s, what):
    end = time.monotonic() + deadline_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= end:
            raise AssertionError(f"timed out after {deadline_s} s waiting for {what}")
        time.sleep(0.25)


def free_port():
    """A TCP port nothing listens on now (the kernel's choice for port 0)."""
    import socket
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def unique(prefix):
    return f"{prefix}{os.getpid() % 100000}{secrets.token_hex(2)}"


def remove_stack(ns):
    """Everything labelled with the stack's namespace: services first, then what they used."""
    for kind in ("service", "network", "config", "secret"):
        ids = docker(kind, "ls", "-q", "--filter", f"label={NS_LABEL}={ns}", check=False)
        ids = ids.stdout.split()
        if not ids:
            continue
        if kind == "network":
            # Services release their network attachments asynchronously.
            end = time.monotonic() + 60
            while docker(kind, "rm", *ids, check=False).returncode != 0:
                if time.monotonic() > end:
                    break
                time.sleep(0.5)
        else:
            docker(kind, "rm", *ids, check=False)


def differences(a, b, path=""):
    """Dotted paths where two JSON values differ, with both values."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += differences(a.get(k), b.get(k), f"{path}.{k}" if path else k)
        return out
    return [] if a == b else [f"{path}: docker stack deploy {json.dumps(a)}, phoenix {json.dumps(b)}"]


class Estate:
    """A throw-away estate: one manager VM on the local engine, optional workers, stacks."""

    def __init__(self, root):
        self.root = root
        self.etc = os.path.join(root, "etc")
        self.stacks = os.path.join(root, "stacks")
        os.makedirs(self.etc)
        os.makedirs(self.stacks)
        self.vms = [{"vmid": 1001, "name": "mgr", "swarm_role": "manager",
                     "network_config": {"ip": "192.0.2.2/24", "gw": "192.0.2.1"},
                     "docker_api": {"url": "unix:///var/run/docker.sock"},
                     "docker_stacks": []}]
        self.write()

    platform = {"version": "1", "domain_name": "test.lan"}

    def write(self):
        with open(os.path.join(self.etc, "phoenix_hypervisor_config.json"), "w") as f:
            json.dump(self.platform, f)
        with open(os.path.join(self.etc, "phoenix_lxc_configs.json"), "w") as f:
            json.dump({"lxc_configs": {}}, f)
        with open(os.path.join(self.etc, "phoenix_vm_configs.json"), "w") as f:
            json.dump({"vms": self.vms}, f, indent=1)

    def add_worker(self, vmid, ip, gw, socket, labels):
        self.vms.append({"vmid": vmid, "name": f"worker{vmid}", "swarm_role": "worker",
                         "network_config": {"ip": f"{ip}/30", "gw": gw},
                         "docker_api": {"url": socket}, "node_labels": labels})
        self.write()

    def stack(self, name, compose, files=None, services=None):
        d = os.path.join(self.stacks, name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "docker-compose.yml"), "w") as f:
            f.write(compose)
        for rel, content in (files or {}).items():
            with open(os.path.join(d, rel), "w") as f:
                f.write(content)
        manifest = {"description": name,
                    "environments": {"production": {"variables": [],
                                                    "services": services or {}}}}
        with open(os.path.join(d, "phoenix.json"), "w") as f:
            json.dump(manifest, f)
        if name not in self.vms[0]["docker_stacks"]:
            self.vms[0]["docker_stacks"].append(name)
            self.write()


class Suite:
    def __init__(self, phoenix):
        self.phoenix = phoenix
        self.tmp = tempfile.mkdtemp(prefix="phoenix-swarm-test-")
        self.estate = Estate(self.tmp)
        self.stacks = []

    def close(self):
        for ns in self.stacks:
            remove_stack(ns)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def new_stack(self, prefix, compose, **kw):
        name = unique(prefix)
        self.stacks.append(name)
        self.estate.stack(name, compose.replace("@NS@", name), **kw)
        return name

    def phx(self, *args, check_exit=0, timeout=300):
        r = run([self.phoenix, "-C", self.estate.etc, *args], check=False, timeout=timeout)
        if check_exit is not None and r.returncode != check_exit:
            raise AssertionError(f"phoenix {' '.join(args)} exited {r.returncode}, expected "
                                 f"{check_exit}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}")
        return r

    def sync(self, name, *extra, check_exit=0):
        r = self.phx("--output", "json", "sync", "stack", name, "--timeout", "180", *extra,
                     check_exit=check_exit)
        return json.loads(r.stdout)

    # ---- tests ----------------------------------------------------------------------------------

    def test_equivalence(self):
        compose = """
services:
  web:
    image: phoenix-test/busybox:1
    command: ["httpd", "-f", "-p", "8080", "-h", "/tmp"]
    hostname: web-host
    user: "0"
    working_dir: /tmp
    stop_grace_period: 20s
    environment:
      MODE: production
      LEVEL: "3"
    labels:
      org.example.container: "yes"
    volumes:
      - data:/data
      - /etc/hostname:/host-hostname:ro
      - type: tmpfs
        target: /cache
    networks:
      - back
      - traefik-public
    configs:
      - source: settings
        target: /etc/web.conf
    healthcheck:
      test: ["CMD", "true"]
      interval: 2s
      timeout: 1s
      retries: 3
    deploy:
      replicas: 1
      labels:
        org.example.service: "web"
      placement:
        constraints: [node.role == manager]
      resources:
        limits: {cpus: "0.25", memory: 64M}
      restart_policy: {condition: on-failure, delay: 1s, max_attempts: 5}
      update_config: {parallelism: 1, delay: 1s, failure_action: rollback, order: start-first}
  idle:
    image: phoenix-test/busybox:1
    entrypoint: sleep
    command: "100000"
    deploy:
      mode: global
networks:
  back:
    driver_opts: {com.example.opt: "1"}
    labels: {org.example.net: "back"}
  traefik-public:
    external: true
volumes:
  data:
    labels: {org.example.volume: "data"}
configs:
  settings:
    file: ./settings.conf
"""
        files = {"settings.conf": "answer=42\n"}
        services = {"web": {"traefik_labels": [
            "traefik.enable=true",
            "traefik.http.routers.@R@.rule=Host(`@R@.test.lan`)",
            "traefik.http.services.@R@.loadbalancer.server.port=8080"]}}
        phx_ns = unique("eqp")
        cli_ns = unique("eqc")
        self.stacks += [phx_ns, cli_ns]
        for ns in (phx_ns, cli_ns):
            svc = {"web": {"traefik_labels": [l.replace("@R@", ns) for l in
                                              services["web"]["traefik_labels"]]}}
            self.estate.stack(ns, compose, files=files, services=svc)
        # docker stack deploy gets Phoenix's rendered, deployable compose file: the same
        # traefik labels, traefik-public attached, variables substituted.
        out = os.path.join(self.tmp, "render")
        self.phx("render", "--out", out)
        rendered = os.path.join(out, "stacks", cli_ns, "docker-compose.yml")
        # The rendered file is for the manager; relative config files resolve from its directory.
        shutil.copy(os.path.join(self.estate.stacks, cli_ns, "settings.conf"),
                    os.path.join(os.path.dirname(rendered), "settings.conf"))
        run(["docker", "stack", "deploy", "--resolve-image", "never", "-c", rendered, cli_ns],
            timeout=120)
        report = self.sync(phx_ns)
        assert report["converged"], report

        def specs(ns):
            nets = {n["Id"]: n["Name"] for n in docker_json("network", "inspect", *docker(
                "network", "ls", "-q").stdout.split())}
            out = {}
            for sid in docker("service", "ls", "-q", "--filter",
                              f"label={NS_LABEL}={ns}").stdout.split():
                spec = docker_json("service", "inspect", sid)[0]["Spec"]
                text = json.dumps(spec)
                for nid, name in nets.items():
                    text = text.replace(f'"{nid}"', f'"{name}"')
                text = text.replace(ns, "NS")
                spec = json.loads(text)
                for ref in spec["TaskTemplate"]["ContainerSpec"].get("Configs", []):
                    ref.pop("ConfigID", None)
                    # Phoenix names configs after their content; docker stack deploy does not.
                    ref["ConfigName"] = re.sub(r"_[0-9a-f]{12}$", "", ref["ConfigName"])
                out[spec["Name"]] = spec
            return out

        a, b = specs(cli_ns), specs(phx_ns)
        assert sorted(a) == sorted(b) == ["NS_idle", "NS_web"], (sorted(a), sorted(b))
        # The one intended difference: without an update_config failure_action, Phoenix rolls a
        # failed update back where docker stack deploy pauses it.
        assert a["NS_idle"]["UpdateConfig"]["FailureAction"] == "pause"
        assert b["NS_idle"]["UpdateConfig"]["FailureAction"] == "rollback"
        b["NS_idle"]["UpdateConfig"]["FailureAction"] = "pause"
        for name in a:
            if a[name] != b[name]:
                raise AssertionError(f"{name} differs: " + "; ".join(differences(a[name], b[name])))

    def test_idempotence_and_pruning(self):
        def compose(n, extra=""):
            svc = "".join(f"  s{i}:\n    image: {IMAGE}\n    command: sleep 100000\n"
                          for i in range(n))
            return "services:\n" + svc + extra

        with_config = ("    configs: [cfg]\nconfigs:\n  cfg:\n    file: ./cfg.txt\n")
        small = self.new_stack("idm", compose(1))
        big = self.new_stack("idm", compose(10, with_config), files={"cfg.txt": "v1"})
        for name in (small, big):
            first = self.sync(name)
            assert first["converged"] and first["requests"]["mutating"] > 0, first
        again = {name: self.sync(name) for name in (small, big)}
        for name, r in again.items():
            assert r["changes"] == 0 and r["requests"]["mutating"] == 0, r
            assert all(s["action"] == "unchanged" for s in r["services"]), r
        assert again[small]["requests"]["total"] == again[big]["requests"]["total"], again

        old_configs = set(docker("config", "ls", "-q", "--filter",
                                 f"label={NS_LABEL}={big}").stdout.split())
        assert len(old_configs) == 1
        self.estate.stack(big, compose(9, with_config), files={"cfg.txt": "v2"})
        r = self.sync(big)
        actions = {s["name"]: s["action"] for s in r["services"]}
        assert actions[f"{big}_s9"] == "remove", actions
        assert actions[f"{big}_s8"] == "update", actions
        assert any(c.startswith(f"config {big}_cfg_") for c in r["created"]), r
        assert any(c.startswith(f"config {big}_cfg_") for c in r["removed"]), r
        names = docker("service", "ls", "--format", "{{.Name}}", "--filter",
                       f"label={NS_LABEL}={big}").stdout.split()
        assert f"{big}_s9" not in names and len(names) == 9, names
        new_configs = set(docker("config", "ls", "-q", "--filter",
                                 f"label={NS_LABEL}={big}").stdout.split())
        assert len(new_configs) == 1 and not (new_configs & old_configs), (old_configs,
                                                                          new_configs)
        final = self.sync(big)
        assert final["requests"]["mutating"] == 0, final

    def test_rollback(self):
        good = f"""
services:
  app:
    image: {IMAGE}
    command: ["sleep", "100000"]
    deploy:
      update_config: {{monitor: 2s}}
"""
        name = self.new_stack("rbk", good)
        assert self.sync(name)["converged"]
        bad = good.replace('["sleep", "100000"]', '["sh", "-c", "exit 3"]')
        self.estate.stack(name, bad)
        r = self.sync(name, check_exit=2)
        assert not r["converged"], r
        assert len(r["failures"]) == 1 and "rolled back" in r["failures"][0], r
        spec = docker_json("service", "inspect", f"{name}_app")[0]["Spec"]
        assert spec["TaskTemplate"]["ContainerSpec"]["Args"] == ["sleep", "100000"], spec
        text = self.phx("sync", "stack", name, "--timeout", "180", check_exit=2)
        assert "failed: " + name + "_app: the update failed and was rolled back" in text.stdout, \
            text.stdout

    def test_unhealthy(self):
        name = self.new_stack("unh", f"""
services:
  sick:
    image: {IMAGE}
    command: ["sleep", "100000"]
    healthcheck:
      test: ["CMD", "false"]
      interval: 1s
      timeout: 1s
      retries: 1
""")
        # The deadline is generous: on a loaded machine the first task may take a while to
        # start and fail its health check, and the failure must be there to be explained.
        r = self.phx("--output", "json", "sync", "stack", name, "--timeout", "60", check_exit=2)
        report = json.loads(r.stdout)
        assert not report["converged"] and len(report["failures"]) == 1, report
        failure = report["failures"][0]
        assert failure.startswith(f"{name}_sick: 0 of 1 tasks running at the deadline; task "), \
            failure
        assert "unhealthy" in failure, failure

    def test_init(self):
        label = unique("phx")
        engine = netns_engine.NetnsEngine(prefix="phxm", base_dir=self.tmp)
        try:
            s = engine.start()
            self.estate.vms[0].update(docker_api={"url": s["socket"]},
                                      network_config={"ip": f"{s['addr']}/30",
                                                      "gw": s["host_addr"]},
                                      node_labels=[f"{label}=yes"])
            self.estate.write()
            status = self.phx("swarm", "status", check_exit=2)
            assert "needs: no active swarm (swarm init creates it)" in status.stdout, status.stdout
            plan = self.phx("plan", "--swarm")
            assert "has no active swarm that it manages" in plan.stdout, plan.stdout
            dry = self.phx("--dry-run", "swarm", "init")
            assert "swarm init: would take 1 action" in dry.stdout, dry.stdout
            assert engine.docker("info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip() \
                == "inactive"
            done = self.phx("swarm", "init")
            assert done.stdout.splitlines() == [
                "swarm init: took 3 actions",
                f"  initialise a swarm on VM 1001 (mgr), advertising {s['addr']}",
                f"  label node of VM 1001 (mgr): {label}=yes",
                "  create the attachable overlay network traefik-public"], done.stdout
            info = json.loads(engine.docker("info", "--format", "{{json .Swarm}}").stdout)
            assert info["LocalNodeState"] == "active" and info["ControlAvailable"], info
            net = json.loads(engine.docker("network", "inspect", "traefik-public").stdout)[0]
            assert net["Driver"] == "overlay" and net["Attachable"], net
            node = json.loads(engine.docker("node", "inspect", "self").stdout)[0]
            assert node["Spec"]["Labels"] == {label: "yes"}, node
            again = self.phx("swarm", "init")
            assert again.stdout == "swarm init: nothing to do\n", again.stdout
            status = json.loads(self.phx("--output", "json", "swarm", "status").stdout)
            assert status["healthy"] and status["members"][0]["leader"], status
        finally:
            engine.stop()

    def test_tls(self):
        pki = os.path.join(self.tmp, "pki")
        os.makedirs(pki)

        def openssl(*args):
            run(["openssl", *args], timeout=60)

        def ca(name):
            openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "1", "-subj", f"/CN={name}", "-keyout",
                    f"{pki}/{name}.key", "-out", f"{pki}/{name}.pem")

        def issue(name, signer, ext):
            with open(f"{pki}/{name}.ext", "w") as f:
                f.write(ext)
            openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-subj", f"/CN={name}", "-keyout", f"{pki}/{name}.key", "-out",
                    f"{pki}/{name}.csr")
            openssl("x509", "-req", "-in", f"{pki}/{name}.csr", "-CA", f"{pki}/{signer}.pem",
                    "-CAkey", f"{pki}/{signer}.key", "-CAcreateserial", "-days", "1",
                    "-extfile", f"{pki}/{name}.ext", "-out", f"{pki}/{name}.pem")

        ca("ca")
        ca("other-ca")
        issue("client", "ca", "extendedKeyUsage=clientAuth\n")
        issue("stranger", "other-ca", "extendedKeyUsage=clientAuth\n")

        def server_files(addr):
            issue("server", "ca", f"subjectAltName=IP:{addr}\nextendedKeyUsage=serverAuth\n")
            return {"ca": f"{pki}/ca.pem", "cert": f"{pki}/server.pem", "key": f"{pki}/server.key"}

        engine = netns_engine.NetnsEngine(prefix="phxt", base_dir=self.tmp, tls=server_files)
        try:
            s = engine.start()
            self.estate.platform = dict(self.estate.platform,
                                        docker_api={"ca_file": f"{pki}/ca.pem",
                                                    "cert_file": f"{pki}/client.pem",
                                                    "key_file": f"{pki}/client.key"})
            self.estate.vms[0].update(network_config={"ip": f"{s['addr']}/30",
                                                      "gw": s["host_addr"]})
            del self.estate.vms[0]["docker_api"]  # the default: tcp://<vm ip>:2376
            self.estate.write()
            status = json.loads(self.phx("--output", "json", "swarm", "status",
                                         check_exit=2).stdout)
            member = status["members"][0]
            assert member["endpoint"].startswith(f"tcp://{s['addr']}:2376"), member
            assert member["reachable"] and member["api_version"] == "1.41", member
            assert member["state"] == "inactive", member

            self.estate.platform["docker_api"]["cert_file"] = f"{pki}/stranger.pem"
            self.estate.platform["docker_api"]["key_file"] = f"{pki}/stranger.key"
            self.estate.write()
            refused = json.loads(self.phx("--output", "json", "swarm", "status",
                                          check_exit=4).stdout)
            member = refused["members"][0]
            assert not member["reachable"] and s["addr"] in member["error"], member
        finally:
            engine.stop()

    def test_core(self):
        # The real Portainer images cannot be pulled here: the test image stands in for both, so
        # this checks what is deployed (specs, port, placement), not that Portainer answers.
        stack = unique("ptn")
        port = free_port()
        self.stacks.append(stack)
        self.estate.platform = dict(self.estate.platform,
                                    network={"portainer_server_port": port},
                                    docker={"portainer_server_image": IMAGE,
                                            "portainer_agent_image": IMAGE,
                                            "portainer_stack": stack})
        self.estate.write()
        r = json.loads(self.phx("--output", "json", "sync", "core", "--no-wait").stdout)
        actions = {s["name"]: s["action"] for s in r["services"]}
        assert actions == {f"{stack}_agent": "create", f"{stack}_portainer": "create"}, r
        assert f"network {stack}_agent_network" in r["created"], r
        server = docker_json("service", "inspect", f"{stack}_portainer")[0]["Spec"]
        assert server["EndpointSpec"]["Ports"] == [{"Protocol": "tcp", "TargetPort": 9443,
                                                    "PublishedPort": port,
                                                    "PublishMode": "host"}], server
        assert server["TaskTemplate"]["Placement"]["Constraints"] == ["node.role == manager"]
        assert server["TaskTemplate"]["ContainerSpec"]["Args"] == [
            "-H", "tcp://tasks.agent:9001", "--tlsskipverify"], server
        agent = docker_json("service", "inspect", f"{stack}_agent")[0]["Spec"]
        assert "Global" in agent["Mode"], agent
        assert agent["TaskTemplate"]["Placement"]["Constraints"] == [
            "node.labels.com.phoenix.portainer-agent == true"], agent
        mounts = {m["Target"]: m["Source"] for m in agent["TaskTemplate"]["ContainerSpec"]["Mounts"]}
        assert mounts == {"/var/run/docker.sock": "/var/run/docker.sock",
                          "/var/lib/docker/volumes": "/var/lib/docker/volumes"}, mounts
        again = json.loads(self.phx("--output", "json", "sync", "core", "--no-wait").stdout)
        assert again["changes"] == 0 and again["requests"]["mutating"] == 0, again

    def test_two_node(self):
        label = unique("phx")
        engine = netns_engine.NetnsEngine(prefix="phxw", base_dir=self.tmp)
        try:
            s = engine.start()
            self.estate.add_worker(1002, s["addr"], s["host_addr"], s["socket"],
                                   [f"{label}=yes"])
            status = self.phx("swarm", "status", check_exit=2)
            assert "not joined" in status.stdout, status.stdout
            joined = self.phx("swarm", "join", "1002")
            assert "join VM 1002 (worker1002) to the swarm" in joined.stdout, joined.stdout
            assert f"label node of VM 1002 (worker1002): {label}=yes" in joined.stdout
            again = self.phx("swarm", "join", "1002")
            assert "nothing to do" in again.stdout, again.stdout
            status = json.loads(self.phx("--output", "json", "swarm", "status").stdout)
            assert status["healthy"], status
            assert [m["state"] for m in status["members"]] == ["active", "active"], status

            token = secrets.token_hex(8)
            name = self.new_stack("two", f"""
services:
  web:
    image: {IMAGE}
    command: ["sh", "-c", "mkdir -p /www && echo {token} > /www/index.html && httpd -f -p 8080 -h /www"]
    networks: [mesh]
    deploy:
      # This kernel has no IPVS, so a service's virtual IP cannot answer: DNS round robin
      # gives the task's own address on the overlay network.
      endpoint_mode: dnsrr
      placement:
        constraints: [node.labels.{label} == yes]
networks:
  mesh:
    attachable: true
""")
            r = self.sync(name)
            assert r["converged"], r
            tasks = docker("service", "ps", "--filter", "desired-state=running", "--format",
                           "{{.Node}}", f"{name}_web").stdout.split()
            assert tasks == [engine.state["hostname"]], tasks

            def fetch():
                # busybox-static's wget crashes resolving names; nc speaks the HTTP request.
                out = docker("run", "--rm", "--network", f"{name}_mesh", IMAGE, "sh", "-c",
                             "printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 3 web 8080",
                             check=False, timeout=60)
                return out.stdout.strip().endswith(token)
            poll(fetch, 90, "the worker's service to answer across the overlay network")
        finally:
            for ns in list(self.stacks):
                remove_stack(ns)
            engine.stop()


def prerequisites():
    if os.geteuid() != 0:
        return "needs root (it starts a dockerd in a network namespace)"
    if shutil.which("docker") is None:
        return "the docker CLI is not installed (scripts/install-deps.sh installs docker.io)"
    if not netns_engine.ping(netns_engine.MAIN_SOCKET):
        return "no Docker engine answers on /var/run/docker.sock (scripts/docker-env.sh starts it)"
    info = json.loads(docker("info", "--format", "{{json .Swarm}}", check=False).stdout or "{}")
    if info.get("LocalNodeState") != "active" or not info.get("ControlAvailable"):
        return "the engine is not a swarm manager (scripts/docker-env.sh creates the swarm)"
    if docker("image", "inspect", IMAGE, check=False).returncode != 0:
        return f"the image {IMAGE} is missing (scripts/docker-env.sh builds it)"
    if docker("network", "inspect", "traefik-public", check=False).returncode != 0:
        return "the traefik-public network is missing (scripts/docker-env.sh creates it)"
    return None


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    reason = prerequisites()
    if reason:
        if os.environ.get("CI") == "true":
            print(f"FAIL: {reason}", file=sys.stderr)
            return 1
        print(f"SKIP: {reason}")
        return SKIP
    names = sys.argv[2:] or ["equivalence", "idempotence_and_pruning", "rollback", "unhealthy",
                             "init", "tls",
                             "core", "two_node"]
    failed = 0
    for name in names:
        suite = Suite(os.path.abspath(sys.argv[1]))
        start = time.monotonic()
        try:
            getattr(suite, "test_" + name)()
            print(f"ok   {name} ({time.monotonic() - start:.1f} s)")
        except Exception:  # noqa: BLE001 - report every failure, then clean up
            failed += 1
            print(f"FAIL {name}\n{traceback.format_exc()}")
        finally:
            suite.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
