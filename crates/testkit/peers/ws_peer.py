"""WebSocket peers on Python's `websockets` library (another stack than rampart's).

  ws_peer.py server
      An echo server on 127.0.0.1 (prints "LISTENING 127.0.0.1:PORT"). On each connection it
      first sends a JSON message describing the handshake it received (path, headers), then
      echoes every message back, text as text and binary as binary.
  ws_peer.py client URL [--ca=CA_FILE] [HEADER=VALUE ...]
      Connects (wss: verifying the server's certificate for "localhost" against CA_FILE),
      reads the greeting, sends 50 text and 50 binary messages (up to 100 KiB) and checks every
      echo, then closes. Prints one JSON line: {"ok": true, "hello": {...},
      "echoed": 100} or {"ok": false, "refused": STATUS} or {"ok": false, "error": "..."}.
  ws_peer.py h2 HOST:PORT PATH [HEADER=VALUE ...]
      A WebSocket over HTTP/2 (RFC 8441): Python's h2 opens an extended CONNECT stream over
      h2c, and websockets' sans-I/O protocol speaks the frames on it. Reads the greeting, sends
      20 messages and checks their echoes. Prints {"ok": true, "status": 200, "hello": {...},
      "echoed": 20} or {"ok": false, "status": STATUS, ...}.
  ws_peer.py idle URL SECONDS [HEADER=VALUE ...]
      Connects, reads the greeting, sends nothing for SECONDS (no pings either), then tries
      one echo. Prints {"closed": true|false}.
"""
import asyncio
import json
import ssl
import sys

import websockets


async def echo(ws, path=None):
    hello = {
        "path": getattr(ws, "path", path),
        "headers": [[k.lower(), v] for k, v in ws.request_headers.raw_items()],
    }
    try:
        await ws.send(json.dumps(hello))
        async for message in ws:
            await ws.send(message)
    except websockets.exceptions.ConnectionClosed:
        pass  # the other end went away (a client closing, or the gateway's idle timeout)


async def serve():
    async with websockets.serve(echo, "127.0.0.1", 0, ping_interval=None,
                                max_size=1 << 20) as server:
        host, port = server.sockets[0].getsockname()[:2]
        print(f"LISTENING {host}:{port}", flush=True)
        await asyncio.Future()


def headers_of(args):
    return [tuple(a.split("=", 1)) for a in args]


def tls_of(url, extra):
    """For wss: a client context trusting the --ca file, and the name to verify."""
    ca = next((a.split("=", 1)[1] for a in extra if a.startswith("--ca=")), None)
    if not url.startswith("wss://"):
        return {}
    return {"ssl": ssl.create_default_context(cafile=ca), "server_hostname": "localhost"}


async def client(url, extra):
    tls = tls_of(url, extra)
    extra = [a for a in extra if not a.startswith("--ca=")]
    try:
        async with websockets.connect(url, extra_headers=headers_of(extra), ping_interval=None,
                                      max_size=1 << 20, open_timeout=5, **tls) as ws:
            hello = json.loads(await asyncio.wait_for(ws.recv(), 5))
            echoed = 0
            for i in range(50):
                text = f"message {i} " + "x" * (i * 100)
                await ws.send(text)
                if await asyncio.wait_for(ws.recv(), 5) != text:
                    return {"ok": False, "error": f"text {i} came back different"}
                echoed += 1
                data = bytes([i % 256]) * (i * 2048 + 1)
                await ws.send(data)
                if await asyncio.wait_for(ws.recv(), 5) != data:
                    return {"ok": False, "error": f"binary {i} came back different"}
                echoed += 1
            return {"ok": True, "hello": hello, "echoed": echoed}
    except websockets.exceptions.InvalidStatusCode as e:
        return {"ok": False, "refused": e.status_code}
    except Exception as e:  # anything else is a failure to report, not a crash
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}


async def idle(url, seconds, extra):
    async with websockets.connect(url, extra_headers=headers_of(extra), ping_interval=None,
                                  open_timeout=5) as ws:
        await asyncio.wait_for(ws.recv(), 5)
        await asyncio.sleep(seconds)
        try:
            await ws.send("still there?")
            await asyncio.wait_for(ws.recv(), 2)
            return {"closed": False}
        except (websockets.exceptions.ConnectionClosed, asyncio.TimeoutError):
            return {"closed": True}


def over_h2(target, path, extra):
    import socket
    import h2.config
    import h2.connection
    import h2.events
    from websockets.connection import Connection, Side
    from websockets.frames import Frame

    host, port = target.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    ws = Connection(Side.CLIENT)
    state = {"status": None, "ended": False}
    frames = []

    def pump(until):
        while not until():
            data = sock.recv(65536)
            if not data:
                state["ended"] = True
                return
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.RemoteSettingsChanged):
                    pass
                elif isinstance(event, h2.events.ResponseReceived):
                    state["status"] = int(dict(event.headers)[b":status"])
                elif isinstance(event, h2.events.DataReceived):
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    ws.receive_data(event.data)
                    frames.extend(f for f in ws.events_received() if isinstance(f, Frame))
                elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                    state["ended"] = True
            sock.sendall(conn.data_to_send())

    # The server must allow extended CONNECT (SETTINGS_ENABLE_CONNECT_PROTOCOL) first.
    pump(lambda: conn.remote_settings.enable_connect_protocol == 1 or state["ended"])
    headers = [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"),
               (":path", path), (":authority", target), ("sec-websocket-version", "13")]
    headers += [tuple(h.split("=", 1)) for h in extra]
    conn.send_headers(1, headers)
    sock.sendall(conn.data_to_send())
    pump(lambda: state["status"] is not None or state["ended"])
    if state["status"] != 200:
        return {"ok": False, "status": state["status"]}

    def send(text):
        ws.send_text(text.encode())
        conn.send_data(1, b"".join(ws.data_to_send()))
        sock.sendall(conn.data_to_send())

    pump(lambda: frames or state["ended"])
    hello = json.loads(frames.pop(0).data)
    echoed = 0
    for i in range(20):
        text = f"over h2 {i} " + "y" * (i * 500)
        send(text)
        pump(lambda: frames or state["ended"])
        if frames and frames.pop(0).data.decode() == text:
            echoed += 1
    return {"ok": echoed == 20, "status": 200, "hello": hello, "echoed": echoed}


def main():
    mode = sys.argv[1]
    if mode == "server":
        asyncio.run(serve())
    elif mode == "client":
        print(json.dumps(asyncio.run(client(sys.argv[2], sys.argv[3:]))), flush=True)
    elif mode == "h2":
        print(json.dumps(over_h2(sys.argv[2], sys.argv[3], sys.argv[4:])), flush=True)
    elif mode == "idle":
        print(json.dumps(asyncio.run(idle(sys.argv[2], float(sys.argv[3]), sys.argv[4:]))),
              flush=True)
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
