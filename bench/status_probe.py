"""During a stampede on the status page: how long an incident update takes to show on the page,
and how the operator API answers.  Usage: status_probe.py HOST:PORT TOKEN RAMPART_BINARY"""
import http.client
import os
import subprocess
import sys
import time

host, token, binary = sys.argv[1], sys.argv[2], sys.argv[3]
h, p = host.rsplit(":", 1)


def get(conn, path, headers=None):
    conn.request("GET", path, headers=headers or {})
    r = conn.getresponse()
    return r.status, r.read()


# Freshness: an update posted through the CLI, then the page polled every 50 ms until it shows.
page = http.client.HTTPConnection(h, int(p), timeout=5)
for n in range(1, 4):
    marker = f"Probe update {n} {time.time_ns()}"
    t0 = time.monotonic()
    subprocess.run(
        [binary, "incident", "update", "1", "--message", marker],
        check=True, capture_output=True,
        env={**os.environ, "RAMPART_CONTROL": f"http://{host}", "RAMPART_TOKEN": token},
    )
    seen = None
    while seen is None and time.monotonic() - t0 < 30:
        status, body = get(page, "/")
        if status == 200 and marker.encode() in body:
            seen = time.monotonic() - t0
        else:
            time.sleep(0.05)
    print(f"update_visible_ms {n} {seen * 1000:.0f}" if seen is not None else f"update_visible_ms {n} never")

# The operator API: 100 authenticated reads, 20 ms apart, on one keep-alive connection.
api = http.client.HTTPConnection(h, int(p), timeout=5)
times = []
for _ in range(100):
    t0 = time.monotonic()
    status, _ = get(api, "/v1/incidents", {"authorization": f"Bearer {token}"})
    times.append((time.monotonic() - t0) * 1000)
    assert status == 200, status
    time.sleep(0.02)
times.sort()
print(f"api_ms p50 {times[49]:.2f} p99 {times[98]:.2f} max {times[-1]:.2f}")
