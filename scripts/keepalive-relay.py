#!/usr/bin/env python3
"""A keep-alive HTTP relay in front of moto, for benchmarks.

moto's server (werkzeug) answers every request with `Connection: close`, so a client opens a new
TCP connection per call: a cost real DynamoDB does not charge, since it keeps connections alive.
This relay keeps its clients' connections open (HTTP/1.1) and forwards each request to moto on a
connection of its own, so the measured process pays for connection reuse as it would on AWS.
The relay's own cost lands in this process, not in the one measured.

Usage: keepalive-relay.py LISTEN_PORT UPSTREAM_URL (prints "ready" once it listens).
"""
import http.client
import http.server
import sys
import urllib.parse

# Hop-by-hop headers: they describe one connection, not the message, and are not relayed.
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


def relay_handler(upstream_host, upstream_port):
    class Relay(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def relay(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
            upstream = http.client.HTTPConnection(upstream_host, upstream_port, timeout=120)
            try:
                upstream.request(self.command, self.path, body=body, headers=headers)
                answer = upstream.getresponse()
                payload = answer.read()
            finally:
                upstream.close()
            self.send_response_only(answer.status, answer.reason)
            for k, v in answer.getheaders():
                if k.lower() not in HOP and k.lower() != "content-length":
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = relay

    return Relay


def main():
    port, upstream = int(sys.argv[1]), urllib.parse.urlsplit(sys.argv[2])
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), relay_handler(upstream.hostname, upstream.port))
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
