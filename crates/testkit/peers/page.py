"""Serves one HTML page (the file given, read at each request) at / with Python's http.server:
a page on an origin of its own, for browser tests.

Usage: page.py FILE  -> prints "LISTENING 127.0.0.1:PORT" and serves until killed.
"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    path = sys.argv[1]

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            with open(path, "rb") as f:
                body = f.read()
            self.send_response(200)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    host, port = server.server_address
    print(f"LISTENING {host}:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
