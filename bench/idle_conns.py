"""Opens N keep-alive connections to ADDR, completes one request on each, then holds them idle.

Usage: idle_conns.py HOST:PORT N READY_FILE  — writes the number opened to READY_FILE, then sleeps
until killed (at most 120 s). Loopback only.
"""
import selectors
import socket
import sys
import time

host, port = sys.argv[1].rsplit(":", 1)
assert host.startswith("127.") or host == "localhost", "loopback only"
n = int(sys.argv[2])
ready_file = sys.argv[3]
request = f"GET /fixed HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
sel = selectors.DefaultSelector()
socks = []
for i in range(n):
    s = socket.socket()
    s.setblocking(True)
    s.connect((host, int(port)))
    s.sendall(request)
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
    socks.append(s)
# Read each response head so every connection has been fully served and is idle.
pending = set(socks)
deadline = time.time() + 60
while pending and time.time() < deadline:
    for key, _ in sel.select(timeout=1):
        try:
            data = key.fileobj.recv(65536)
        except BlockingIOError:
            continue
        if data:
            pending.discard(key.fileobj)
            sel.unregister(key.fileobj)
with open(ready_file, "w") as f:
    f.write(str(n - len(pending)))
time.sleep(120)
