"""Summarises bench/out/auth (medians over rounds) as Markdown."""
import re
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from wrk_parse import wrk  # noqa: E402

out, rounds = sys.argv[1], int(sys.argv[2])


def median(name):
    runs = sorted((wrk(f"{out}/{name}-{r}.txt") for r in range(1, rounds + 1)), key=lambda x: x[0])
    return runs[len(runs) // 2]


base = median("public")
print("| route | req/s | p50 ms | p99 ms | non-2xx | vs public |")
print("|---|---:|---:|---:|---:|---:|")
for name, label in (("public", "public (no auth)"), ("introspected", "introspection, cached decision"), ("jwt", "JWT (ES256), cached verification")):
    r = median(name)
    print(f"| {label} | {r[0]:,.0f} | {r[1]:.3f} | {r[2]:.3f} | {r[3]} | {r[0] / base[0]:.3f} |")
print()
healthy, holed = median("healthy"), median("blackholed")


def h2(path):
    text = open(path).read()
    done = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", text)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    mean = re.search(r"time for request:\s+\S+\s+(\S+)\s+(\S+)", text)
    def ms(t):
        m = re.match(r"([\d.]+)(us|ms|s)", t)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v

    return int(done.group(2)), int(codes.group(1)), int(codes.group(4)), ms(mean.group(1)), ms(mean.group(2))


second_h = [h2(f"{out}/healthy-{r}-second.txt") for r in range(1, rounds + 1)]
second_b = [h2(f"{out}/blackholed-{r}-second.txt") for r in range(1, rounds + 1)]
print("| public route, beside a load on… | req/s | p50 ms | p99 ms | non-2xx |")
print("|---|---:|---:|---:|---:|")
print(f"| a route whose auth works | {healthy[0]:,.0f} | {healthy[1]:.3f} | {healthy[2]:.3f} | {healthy[3]} |")
print(f"| a route whose auth is black-holed | {holed[0]:,.0f} | {holed[1]:.3f} | {holed[2]:.3f} | {holed[3]} |")
print(f"| ratio (black-holed / healthy) | {holed[0] / healthy[0]:.3f} | | {holed[2] / healthy[2]:.3f} | |")
print()
for label, runs in (("working auth", second_h), ("black-holed auth", second_b)):
    done = sum(r[0] for r in runs)
    print(f"Fixed-rate load on the route with {label}: {done} requests over {rounds} rounds, "
          f"{sum(r[1] for r in runs)} 2xx, {sum(r[2] for r in runs)} 5xx; slowest request {max(r[3] for r in runs):.1f} ms.")
