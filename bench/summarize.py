"""Reads bench/out and prints the comparison as Markdown (medians over rounds)."""
import re
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from wrk_parse import wrk  # noqa: E402

out, rounds = sys.argv[1], int(sys.argv[2])


def h2(path, tsv):
    text = open(path).read()
    rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", text).group(1))
    lats = sorted(int(line.split("\t")[2]) / 1000 for line in open(tsv) if line.strip())
    bad = sum(1 for line in open(tsv) if line.strip() and not line.split("\t")[1].startswith("2"))
    pick = lambda p: lats[min(len(lats) - 1, int(round((len(lats) - 1) * p)))]
    return rps, pick(0.5), pick(0.99), bad


def median_round(results):
    return sorted(results, key=lambda r: r[0])[len(results) // 2]


rows = []
for proto in ("h1", "h2"):
    parse = (lambda n, r: wrk(f"{out}/h1-{n}-{r}.txt")) if proto == "h1" else (
        lambda n, r: h2(f"{out}/h2-{n}-{r}.txt", f"{out}/h2-{n}-{r}.tsv"))
    backend = parse("backend", 0)
    ram = median_round([parse("rampart", r) for r in range(1, rounds + 1)])
    ngx = median_round([parse("nginx", r) for r in range(1, rounds + 1)])
    rows.append((proto, backend, ram, ngx))

print("| protocol | target | req/s | p50 ms | p99 ms | non-2xx |")
print("|---|---|---:|---:|---:|---:|")
for proto, backend, ram, ngx in rows:
    name = "HTTP/1.1" if proto == "h1" else "HTTP/2 (h2c)"
    for label, r in (("backend alone", backend), ("rampart", ram), ("nginx", ngx)):
        print(f"| {name} | {label} | {r[0]:,.0f} | {r[1]:.3f} | {r[2]:.3f} | {r[3]} |")
print()
print("| protocol | rampart/nginx throughput | rampart/nginx p99 | backend/max(proxy) |")
print("|---|---:|---:|---:|")
for proto, backend, ram, ngx in rows:
    name = "HTTP/1.1" if proto == "h1" else "HTTP/2 (h2c)"
    print(f"| {name} | {ram[0] / ngx[0]:.2f} | {ram[2] / ngx[2]:.2f} | {backend[0] / max(ram[0], ngx[0]):.2f} |")
print()
mem = dict(line.split() for line in open(f"{out}/memory.txt"))
print("| memory (RSS) | rampart | nginx (workers) |")
print("|---|---:|---:|")
print(f"| idle | {int(mem['rampart_idle_kb']) / 1024:.1f} MiB | {int(mem['nginx_idle_kb']) / 1024:.1f} MiB |")
print(f"| {mem['rampart_10k_opened']} / {mem['nginx_10k_opened']} idle keep-alive connections | "
      f"{int(mem['rampart_10k_idle_kb']) / 1024:.1f} MiB | {int(mem['nginx_10k_idle_kb']) / 1024:.1f} MiB |")


def cpu_us(name, r):
    # (user µs, kernel µs) per request of one HTTP/1.1 run: the proxy's CPU time over it.
    u0, s0, u1, s1, hz = (int(x) for x in open(f"{out}/h1-{name}-{r}.cpu").read().split())
    n = wrk(f"{out}/h1-{name}-{r}.txt")[4]
    return (u1 - u0) * 1e6 / hz / n, (s1 - s0) * 1e6 / hz / n


if all(os.path.exists(f"{out}/h1-{n}-{r}.cpu") for n in ("rampart", "nginx") for r in range(1, rounds + 1)):
    print()
    print("HTTP/1.1, the proxy's CPU time per request (user and kernel, from /proc; median of rounds):")
    print()
    print("| proxy | user µs | kernel µs | total µs |")
    print("|---|---:|---:|---:|")
    split = {}
    for name in ("rampart", "nginx"):
        runs = [cpu_us(name, r) for r in range(1, rounds + 1)]
        user = sorted(u for u, _ in runs)[len(runs) // 2]
        kernel = sorted(k for _, k in runs)[len(runs) // 2]
        split[name] = (user, kernel)
        print(f"| {name} | {user:.2f} | {kernel:.2f} | {user + kernel:.2f} |")
    budget = sum(split["nginx"]) / 1.2
    print()
    print(f"1.2× nginx's throughput on one core is {budget:.2f} µs per request in all; with rampart's "
          f"kernel time ({split['rampart'][1]:.2f} µs) that leaves {budget - split['rampart'][1]:.2f} µs "
          f"of user time (now {split['rampart'][0]:.2f}; nginx's {split['nginx'][0]:.2f}).")
