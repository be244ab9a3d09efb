"""gRPC peers on Python's grpcio (C core: another stack than rampart's), with raw-bytes
methods so no generated code is needed.

  grpc_peer.py server NAME [CERT KEY]
      Serves on 127.0.0.1 (TLS with CERT and KEY when given; prints "LISTENING 127.0.0.1:PORT"):
        rampart.test.Echo/Unary         answers JSON {name, request, metadata}; trailing
                                        metadata x-served-by: NAME
        rampart.test.Echo/ServerStream  request N: answers N messages
        rampart.test.Echo/ClientStream  answers the total length of the messages received
        rampart.test.Echo/Bidi          echoes each message
        rampart.test.Echo/Slow          request SECONDS: sleeps, then answers "done"
        rampart.test.Echo/SlowStream    request N: N messages, one each 100 ms
        rampart.test.Echo/Fail          NOT_FOUND "no such thing", trailing x-detail: gone
        rampart.test.Echo/SetHealth     request "1" (SERVING) or "2" (NOT_SERVING)
        grpc.health.v1.Health/Check     the health set above (SERVING at first)
  grpc_peer.py client TARGET CASE [ARG] [KEY=VALUE ...]
      Runs one case against TARGET (host:port, plain) and prints one JSON line:
      {"code": "OK"|status name, "details": ..., "trailing": {...}, ...case results}.
      Cases: unary, server_stream N, client_stream N, bidi N, slow SECONDS (deadline from
      TIMEOUT=seconds), fail, set_health 1|2.
  grpc_peer.py bare-server
      A gRPC server written on Python's h2 alone, that ignores `grpc-timeout` (grpcio's server
      enforces it itself, which would hide whether the gateway does): Slow (request SECONDS)
      answers after that long, SlowStream (request N) sends N messages 100 ms apart.
  grpc_peer.py raw TARGET METHOD REQUEST GRPC_TIMEOUT
      A bare HTTP/2 client (Python's h2, no gRPC library: nothing enforces the deadline on
      this side) calling METHOD with a `grpc-timeout` header; prints {"status": grpc-status,
      "message": grpc-message, "messages": count of messages received, "seconds": elapsed}.
"""
import json
import sys
import threading
import time
from concurrent import futures

import grpc

SERVICE = "rampart.test.Echo"
health = {"status": 1}
lock = threading.Lock()


def serve(name, cert=None, key=None):
    def unary(request, context):
        context.set_trailing_metadata((("x-served-by", name),))
        return json.dumps({
            "name": name,
            "request": request.decode(),
            "metadata": {k: v for k, v in context.invocation_metadata()},
        }).encode()

    def server_stream(request, context):
        for i in range(int(request)):
            yield str(i).encode()

    def client_stream(request_iterator, context):
        return str(sum(len(m) for m in request_iterator)).encode()

    def bidi(request_iterator, context):
        for m in request_iterator:
            yield m

    def slow(request, context):
        time.sleep(float(request))
        return b"done"

    def slow_stream(request, context):
        for i in range(int(request)):
            time.sleep(0.1)
            yield str(i).encode()

    def fail(request, context):
        context.set_trailing_metadata((("x-detail", "gone"),))
        context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")

    def set_health(request, context):
        with lock:
            health["status"] = int(request)
        return b"ok"

    def check(request, context):
        with lock:
            return bytes([0x08, health["status"]])

    echo = grpc.method_handlers_generic_handler(SERVICE, {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
        "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
        "Slow": grpc.unary_unary_rpc_method_handler(slow),
        "SlowStream": grpc.unary_stream_rpc_method_handler(slow_stream),
        "Fail": grpc.unary_unary_rpc_method_handler(fail),
        "SetHealth": grpc.unary_unary_rpc_method_handler(set_health),
    })
    health_service = grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
        "Check": grpc.unary_unary_rpc_method_handler(check),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((echo, health_service))
    if cert:
        creds = grpc.ssl_server_credentials(((open(key, "rb").read(), open(cert, "rb").read()),))
        port = server.add_secure_port("127.0.0.1:0", creds)
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"LISTENING 127.0.0.1:{port}", flush=True)
    server.wait_for_termination()


def client(target, case, rest):
    arg = rest[0] if rest and "=" not in rest[0] else None
    pairs = [r.split("=", 1) for r in rest if "=" in r]
    timeout = float(dict(pairs).pop("TIMEOUT", "10"))
    metadata = [(k, v) for k, v in pairs if k != "TIMEOUT"]
    channel = grpc.insecure_channel(target)
    out = {}
    started = time.monotonic()
    try:
        if case == "unary":
            reply, call = channel.unary_unary(f"/{SERVICE}/Unary").with_call(
                b"hello", metadata=metadata, timeout=timeout)
            out["reply"] = json.loads(reply)
            out["trailing"] = {k: v for k, v in call.trailing_metadata()}
        elif case == "server_stream":
            out["messages"] = [m.decode() for m in channel.unary_stream(f"/{SERVICE}/ServerStream")(
                arg.encode(), metadata=metadata, timeout=timeout)]
        elif case == "client_stream":
            n = int(arg)
            out["total"] = int(channel.stream_unary(f"/{SERVICE}/ClientStream")(
                (b"x" * 1000 for _ in range(n)), metadata=metadata, timeout=timeout))
        elif case == "bidi":
            n = int(arg)
            sent = [f"m{i}".encode() * (i + 1) for i in range(n)]
            got = list(channel.stream_stream(f"/{SERVICE}/Bidi")(
                iter(sent), metadata=metadata, timeout=timeout))
            out["echoed"] = sum(1 for a, b in zip(sent, got) if a == b)
        elif case == "slow":
            out["reply"] = channel.unary_unary(f"/{SERVICE}/Slow")(
                arg.encode(), metadata=metadata, timeout=timeout).decode()
        elif case == "fail":
            channel.unary_unary(f"/{SERVICE}/Fail")(b"", metadata=metadata, timeout=timeout)
        elif case == "set_health":
            channel.unary_unary(f"/{SERVICE}/SetHealth")(arg.encode(), timeout=timeout)
        else:
            sys.exit(f"unknown case {case}")
        out["code"] = "OK"
    except grpc.RpcError as e:
        out["code"] = e.code().name
        out["details"] = e.details()
        out["trailing"] = {k: v for k, v in (e.trailing_metadata() or ())}
    out["seconds"] = round(time.monotonic() - started, 3)
    print(json.dumps(out), flush=True)


def raw(target, method, request, grpc_timeout):
    import socket
    import h2.connection
    import h2.config
    import h2.events
    host, port = target.rsplit(":", 1)
    started = time.monotonic()
    sock = socket.create_connection((host, int(port)), timeout=10)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.send_headers(1, [
        (":method", "POST"), (":scheme", "http"), (":authority", target),
        (":path", f"/{SERVICE}/{method}"), ("content-type", "application/grpc"),
        ("te", "trailers"), ("grpc-timeout", grpc_timeout),
    ])
    body = request.encode()
    conn.send_data(1, bytes([0]) + len(body).to_bytes(4, "big") + body, end_stream=True)
    sock.sendall(conn.data_to_send())
    fields, messages, done = {}, 0, False
    while not done:
        data = sock.recv(65536)
        if not data:
            break
        for event in conn.receive_data(data):
            if isinstance(event, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
                for k, v in event.headers:
                    fields[k.decode() if isinstance(k, bytes) else k] = (
                        v.decode() if isinstance(v, bytes) else v)
            elif isinstance(event, h2.events.DataReceived):
                messages += 1
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                done = True
        sock.sendall(conn.data_to_send())
    print(json.dumps({
        "status": fields.get("grpc-status"), "message": fields.get("grpc-message"),
        "messages": messages, "seconds": round(time.monotonic() - started, 3),
    }), flush=True)


def bare_server():
    import socket
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    print(f"LISTENING 127.0.0.1:{sock.getsockname()[1]}", flush=True)
    while True:
        c, _ = sock.accept()
        threading.Thread(target=bare_connection, args=(c,), daemon=True).start()


def bare_connection(c):
    import h2.connection
    import h2.config
    import h2.events
    import h2.exceptions
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    conn.initiate_connection()
    send_lock = threading.Lock()
    c.sendall(conn.data_to_send())
    requests = {}

    def flush():
        data = conn.data_to_send()
        if data:
            c.sendall(data)

    def answer(stream_id, path, body):
        n = body[5:].decode() or "0"
        try:
            with send_lock:
                conn.send_headers(stream_id, [(":status", "200"),
                                              ("content-type", "application/grpc")])
                flush()
            if path.endswith("/SlowStream"):
                chunks = [str(i).encode() for i in range(int(n))]
                pause = 0.1
            else:
                chunks = [b"done"]
                pause = float(n)
            for chunk in chunks:
                time.sleep(pause)
                with send_lock:
                    conn.send_data(stream_id, bytes([0]) + len(chunk).to_bytes(4, "big") + chunk)
                    flush()
            with send_lock:
                conn.send_headers(stream_id, [("grpc-status", "0")], end_stream=True)
                flush()
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, OSError):
            pass  # the gateway gave up on the stream

    while True:
        try:
            data = c.recv(65536)
        except OSError:
            return
        if not data:
            return
        with send_lock:
            events = conn.receive_data(data)
            flush()
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                path = dict((k.decode() if isinstance(k, bytes) else k,
                             v.decode() if isinstance(v, bytes) else v)
                            for k, v in event.headers).get(":path", "")
                requests[event.stream_id] = [path, b""]
            elif isinstance(event, h2.events.DataReceived):
                requests[event.stream_id][1] += event.data
                with send_lock:
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    flush()
            elif isinstance(event, h2.events.StreamEnded):
                path, body = requests.pop(event.stream_id, ["", b""])
                threading.Thread(target=answer, args=(event.stream_id, path, body),
                                 daemon=True).start()


def main():
    if sys.argv[1] == "server":
        serve(*sys.argv[2:])
    elif sys.argv[1] == "client":
        client(sys.argv[2], sys.argv[3], sys.argv[4:])
    elif sys.argv[1] == "raw":
        raw(*sys.argv[2:6])
    elif sys.argv[1] == "bare-server":
        bare_server()
    else:
        sys.exit(f"unknown mode {sys.argv[1]}")


if __name__ == "__main__":
    main()
