"""An HTTP/1.1 keep-alive client over TLS on Python's ssl module (OpenSSL: another stack than
rampart's rustls), writing raw request bytes on one connection.

  tls_keepalive.py HOST:PORT CA_FILE IDLE_SECONDS

Verifies the server's certificate for "localhost" against CA_FILE (ALPN: http/1.1), then on one
connection: GET /first; waits IDLE_SECONDS; GET /second written in two pieces 200 ms apart;
waits IDLE_SECONDS; GET /third and GET /fourth in one write (pipelined). Prints one JSON line:
{"responses": [[status, path-echoed-or-null], ...], "alpn": "...", "closed_early": bool}.
Loopback only.
"""
import json
import socket
import ssl
import sys
import time

host, port = sys.argv[1].rsplit(":", 1)
assert host.startswith("127."), "loopback only"
ca_file, idle = sys.argv[2], float(sys.argv[3])

ctx = ssl.create_default_context(cafile=ca_file)
ctx.set_alpn_protocols(["http/1.1"])
raw = socket.create_connection((host, int(port)), timeout=10)
conn = ctx.wrap_socket(raw, server_hostname="localhost")
buf = b""
responses = []
closed_early = False


def get(path):
    return f"GET {path} HTTP/1.1\r\nHost: parked.test\r\n\r\n".encode()


def read_response():
    """The next response (status, the path the backend echoed), or None when closed first."""
    global buf
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        rest += chunk
    body, buf = rest[:length], rest[length:]
    status = int(head[9:12])
    try:
        path = json.loads(body).get("path")
    except ValueError:
        path = None
    return [status, path]


def expect(n):
    global closed_early
    for _ in range(n):
        r = read_response()
        if r is None:
            closed_early = True
            return
        responses.append(r)


conn.sendall(get("/first"))
expect(1)
time.sleep(idle)
second = get("/second")
conn.sendall(second[:12])
time.sleep(0.2)
conn.sendall(second[12:])
expect(1)
time.sleep(idle)
conn.sendall(get("/third") + get("/fourth"))
expect(2)
print(json.dumps({"responses": responses, "alpn": conn.selected_alpn_protocol(),
                  "closed_early": closed_early}))
conn.close()
