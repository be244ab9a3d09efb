"""An OTLP/HTTP traces receiver on Python's http.server: decodes every export it gets
(`ExportTraceServiceRequest` in OTLP's JSON encoding) and keeps the spans.

  otlp_receiver.py [hang]  -> prints "LISTENING 127.0.0.1:PORT"
      POST /v1/traces   an export: checked and stored (400 if it is not a valid request);
                        with "hang", never answered
      GET  /spans       every span received so far, flattened: {trace_id, span_id, parent_id,
                        name, kind, start, end, attributes: {key: value}, status, service}
"""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HANG = len(sys.argv) > 1 and sys.argv[1] == "hang"
spans = []
lock = threading.Lock()


def value_of(v):
    for kind in ("stringValue", "boolValue", "doubleValue"):
        if kind in v:
            return v[kind]
    if "intValue" in v:
        return int(v["intValue"])  # OTLP JSON writes 64-bit integers as strings
    raise ValueError(f"unknown value {v}")


def decode(doc):
    out = []
    for rs in doc["resourceSpans"]:
        resource = {a["key"]: value_of(a["value"]) for a in rs["resource"]["attributes"]}
        for ss in rs["scopeSpans"]:
            for s in ss["spans"]:
                trace_id, span_id = s["traceId"], s["spanId"]
                assert len(trace_id) == 32 and int(trace_id, 16) != 0, trace_id
                assert len(span_id) == 16 and int(span_id, 16) != 0, span_id
                start, end = int(s["startTimeUnixNano"]), int(s["endTimeUnixNano"])
                assert 0 < start <= end, (start, end)
                out.append({
                    "trace_id": trace_id, "span_id": span_id,
                    "parent_id": s.get("parentSpanId") or None, "name": s["name"],
                    "kind": s["kind"], "start": start, "end": end,
                    "attributes": {a["key"]: value_of(a["value"]) for a in s["attributes"]},
                    "status": s.get("status", {}).get("code", 0),
                    "service": resource.get("service.name"),
                })
    return out


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body):
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        if HANG:
            time.sleep(3600)
            return
        try:
            got = decode(json.loads(body))
        except Exception as e:  # a malformed export is the sender's bug: say so
            self.reply(400, json.dumps({"error": str(e)}).encode())
            return
        with lock:
            spans.extend(got)
        self.reply(200, b"{}")

    def do_GET(self):
        with lock:
            body = json.dumps(spans).encode()
        self.reply(200, body)


class Server(ThreadingHTTPServer):
    daemon_threads = True


def main():
    server = Server(("127.0.0.1", 0), Handler)
    host, port = server.server_address
    print(f"LISTENING {host}:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
