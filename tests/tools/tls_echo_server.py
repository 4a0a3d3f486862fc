#!/usr/bin/python3
"""A tiny Docker-Engine-like HTTPS server for src/providers/docker/engine_client_test.cc.

It requires a client certificate signed by --ca (mutual TLS, as a TCP engine must), binds
127.0.0.1 port 0 and prints the port it got on stdout, then answers:

  GET /_ping            200 "OK" with the header API-Version: 1.41
  GET /v1.41/version    200 {"ApiVersion": "1.41", ...}
  /v1.41/echo...        200, the request as JSON: method, target (as sent, query still escaped),
                        headers (names lower-cased), body, and the client's port (the same
                        port for two requests means one kept-alive connection)
  anything else         404 {"message": "page not found"}

With --stall it completes the TLS handshake, reads the request and never answers.
It exits when its standard input closes, so a test that dies cannot leave it behind.
Standard library only.
"""

import argparse
import http.server
import json
import os
import ssl
import sys
import threading

API_VERSION = "1.41"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the engine does
    stall = False

    def setup(self):
        # The handshake runs in this connection's thread: a client that stalls or is refused
        # does not hold up the accept loop.
        self.request.do_handshake()
        super().setup()

    def log_message(self, format, *args):
        sys.stderr.write("tls_echo_server: %s\n" % (format % args))

    def reply(self, status, body, content_type="application/json", headers=()):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def handle_request(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        if self.stall:
            threading.Event().wait()
        path = self.path.split("?", 1)[0]
        if self.command in ("GET", "HEAD") and path == "/_ping":
            self.reply(200, "OK", "text/plain; charset=utf-8", [("API-Version", API_VERSION)])
        elif self.command == "GET" and path == "/v%s/version" % API_VERSION:
            self.reply(200, json.dumps({"ApiVersion": API_VERSION, "MinAPIVersion": "1.12",
                                        "Version": "tls-echo"}))
        elif path.startswith("/v%s/echo" % API_VERSION):
            self.reply(200, json.dumps({
                "method": self.command,
                "target": self.path,
                "headers": {name.lower(): value for name, value in self.headers.items()},
                "body": body,
                "client_port": self.client_address[1],
            }, sort_keys=True))
        else:
            self.reply(404, json.dumps({"message": "page not found"}))

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = handle_request


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A refused handshake is part of the tests: one line, no traceback.
        sys.stderr.write("tls_echo_server: %s: %s\n" % (client_address, sys.exc_info()[1]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cert", required=True, help="server certificate (PEM)")
    parser.add_argument("--key", required=True, help="server private key (PEM)")
    parser.add_argument("--ca", required=True, help="CA that signs accepted client certificates")
    parser.add_argument("--stall", action="store_true", help="never answer a request")
    args = parser.parse_args()

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    context.load_verify_locations(args.ca)
    context.verify_mode = ssl.CERT_REQUIRED

    Handler.stall = args.stall
    server = Server(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True,
                                        do_handshake_on_connect=False)

    def exit_when_stdin_closes():
        sys.stdin.buffer.read()
        os._exit(0)

    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
