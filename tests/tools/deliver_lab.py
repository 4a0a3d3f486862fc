#!/usr/bin/python3
"""Small programs the delivery tests (tests/e2e/deliver_test.py) run, several of them as the
commands Phoenix itself runs (dns_server.reload, traefik.restart):

  dnsmasq-restart STATE   stop the dnsmasq whose pid is in STATE/dnsmasq.pid (if any), then start
                          it again with the arguments in STATE/args.json, as `systemctl restart
                          dnsmasq` would; exits with dnsmasq's status once it answers queries
  dnsmasq-stop STATE      stop it
  count FILE              append a line to FILE (a command whose runs a test counts)
  backend ADDR PORT [CERT KEY]
                          an HTTP server standing in for Traefik (or, with CERT and KEY, an
                          HTTPS backend behind it): answers every request with the Host header it
                          got and its own address; prints "ready" once listening
  traefik-restart STATE   stop the Traefik whose pid is in STATE/traefik.pid (if any), then start
                          STATE/args.json's argv (chrooted into its "root", the Traefik guest's
                          local root) as `systemctl restart traefik` would; exits 0 once its
                          ping answers, else with its log on stderr
  traefik-stop STATE      stop it
  https-get CAFILE HOST PORT ADDR [PATH]
                          GET https://HOST:PORT/PATH connecting to ADDR, with CAFILE as the only
                          trust anchor (no system CAs); prints the status code, then the body
"""
import http.server
import json
import os
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not reaped) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def dns_answers(port, deadline_s=10.0):
    """True once something answers a DNS query on 127.0.0.1:port."""
    query = struct.pack(">HHHHHH", 0x5048, 0x0100, 1, 0, 0, 0)
    query += b"".join(bytes([len(p)]) + p.encode() for p in ["ready", "invalid"]) + b"\0"
    query += struct.pack(">HH", 1, 1)
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.2)
            try:
                s.sendto(query, ("127.0.0.1", port))
                data, _ = s.recvfrom(512)
                if data[:2] == query[:2]:
                    return True
            except OSError:
                time.sleep(0.05)
    return False


def stop_pid_file(path):
    try:
        with open(path) as f:
            pid = int(f.read().strip() or 0)
    except (OSError, ValueError):
        pid = 0
    if pid and alive(pid):
        os.kill(pid, signal.SIGTERM)
        end = time.monotonic() + 10
        while alive(pid):
            if time.monotonic() > end:
                os.kill(pid, signal.SIGKILL)
                end = time.monotonic() + 10
            time.sleep(0.02)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def dnsmasq_stop(state):
    stop_pid_file(os.path.join(state, "dnsmasq.pid"))


def dnsmasq_restart(state):
    with open(os.path.join(state, "args.json")) as f:
        config = json.load(f)
    dnsmasq_stop(state)
    with open(os.path.join(state, "dnsmasq.log"), "a") as log:
        # dnsmasq checks its configuration, binds, then detaches: its exit status says whether
        # it started. Its output goes to the log, so that no pipe of Phoenix's stays open.
        r = subprocess.run(config["argv"], stdin=subprocess.DEVNULL, stdout=log,
                           stderr=subprocess.STDOUT, timeout=30)
    if r.returncode != 0:
        with open(os.path.join(state, "dnsmasq.log")) as f:
            sys.stderr.write(f.read()[-2000:])
        return r.returncode
    if not dns_answers(config["port"]):
        print("dnsmasq started but does not answer", file=sys.stderr)
        return 1
    return 0


def count(path):
    with open(path, "a") as f:
        f.write("run\n")
    return 0


def http_answers(addr, port, path, deadline_s):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            with socket.create_connection((addr, port), timeout=1) as s:
                s.sendall(f"GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n".encode())
                if s.recv(64).startswith(b"HTTP/1."):
                    return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def traefik_restart(state):
    """Traefik runs chrooted into the guest's root, so that /etc/traefik is the one Phoenix
    delivered there; the binary is bound onto a file inside that root (this runs in the test's
    own mount namespace)."""
    with open(os.path.join(state, "args.json")) as f:
        config = json.load(f)
    pid_file = os.path.join(state, "traefik.pid")
    stop_pid_file(pid_file)
    root = config["root"]
    inside = os.path.join(root, "usr", "local", "bin", "traefik")
    binary = os.stat(config["binary"])
    try:
        bound = os.stat(inside)
        bound = (bound.st_dev, bound.st_ino) == (binary.st_dev, binary.st_ino)
    except FileNotFoundError:
        bound = False
    if not bound:  # the first start in this mount namespace
        os.makedirs(os.path.dirname(inside), exist_ok=True)
        open(inside, "x").close()
        subprocess.run(["mount", "--bind", config["binary"], inside], check=True)
    log_path = os.path.join(state, "traefik.log")
    with open(log_path, "a") as log:
        p = subprocess.Popen(["chroot", root, "/usr/local/bin/traefik",
                              "--configFile=/etc/traefik/traefik.yml"],
                             stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
    with open(pid_file, "w") as f:
        f.write(str(p.pid))
    if not http_answers(config["ping_addr"], config["ping_port"], "/ping", 30) or \
            p.poll() is not None:
        with open(log_path) as f:
            sys.stderr.write(f.read()[-3000:])
        return 1
    return 0


def backend(addr, port, cert=None, key=None):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = (f"backend host={self.headers.get('Host')} "
                    f"addr={self.server.server_address[0]}\n").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer((addr, int(port)), Handler)
    if cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    print("ready", flush=True)
    server.serve_forever()


def https_get(cafile, host, port, addr, path="/"):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies, checks the host name
    context.load_verify_locations(cafile=cafile)  # the only trust anchor
    try:
        with socket.create_connection((addr, int(port)), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname=host) as s:
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
    except (OSError, ssl.SSLError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b"\r\n")[0].split()[1].decode()
    print(status)
    sys.stdout.write(body.decode(errors="replace"))
    return 0


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "dnsmasq-restart":
        return dnsmasq_restart(*args)
    if cmd == "dnsmasq-stop":
        dnsmasq_stop(*args)
        return 0
    if cmd == "traefik-restart":
        return traefik_restart(*args)
    if cmd == "traefik-stop":
        stop_pid_file(os.path.join(args[0], "traefik.pid"))
        return 0
    if cmd == "count":
        return count(*args)
    if cmd == "backend":
        return backend(*args)
    if cmd == "https-get":
        return https_get(*args)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
