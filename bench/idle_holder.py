"""Opens N keep-alive connections to ADDR one after another, completes one request on each
(HTTP/1.1, HTTP/1.1 over TLS, or h2c by prior knowledge), then holds them all idle.

Usage: idle_holder.py HOST:PORT N READY_FILE [h1|h1-tls|h2c] — writes the number of connections that
got a whole response to READY_FILE, then sleeps until killed (at most 300 s). Loopback only.

One at a time, so the proxy needs a single upstream connection for all of them: what the
proxy holds afterwards is what its idle client connections cost.
"""
import socket
import ssl
import sys
import time

import h2.config
import h2.connection
import h2.events

host, port = sys.argv[1].rsplit(":", 1)
assert host.startswith("127.") or host == "localhost", "loopback only"
n = int(sys.argv[2])
ready_file = sys.argv[3]
mode = sys.argv[4] if len(sys.argv) > 4 else "h1"
request = f"GET /fixed HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


def h1(s):
    s.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            return False
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = s.recv(65536)
        if not chunk:
            return False
        body += chunk
    return head.startswith(b"HTTP/1.1 200")


def h2c(s):
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.send_headers(1, [(":method", "GET"), (":scheme", "http"), (":authority", host),
                          (":path", "/fixed")], end_stream=True)
    s.sendall(conn.data_to_send())
    status = None
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return False
        for event in conn.receive_data(chunk):
            if isinstance(event, h2.events.ResponseReceived):
                status = dict(event.headers).get(b":status")
            if isinstance(event, h2.events.StreamEnded):
                s.sendall(conn.data_to_send())
                return status == b"200"
        s.sendall(conn.data_to_send())


# TLS to a proxy on loopback with a throwaway self-signed certificate: nothing to verify.
tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
tls.check_hostname = False
tls.verify_mode = ssl.CERT_NONE
tls.set_alpn_protocols(["http/1.1"])

served = 0
socks = []
for _ in range(n):
    s = socket.create_connection((host, int(port)))
    s.settimeout(10)
    if mode == "h1-tls":
        s = tls.wrap_socket(s)
    if (h2c if mode == "h2c" else h1)(s):
        served += 1
    socks.append(s)
with open(ready_file, "w") as f:
    f.write(str(served))
time.sleep(300)
