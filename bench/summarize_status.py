"""Summarizes bench/status_page.sh: median round per target, ratios to nginx, probe figures."""
import statistics
import sys

from wrk_parse import wrk

out, rounds = sys.argv[1], int(sys.argv[2])


def median_round(name):
    runs = [wrk(f"{out}/{name}-{r}.txt") for r in range(1, rounds + 1)]
    return sorted(runs, key=lambda x: x[0])[len(runs) // 2]


print("| resource | server | req/s | p50 ms | p99 ms | non-2xx |")
print("|---|---|---:|---:|---:|---:|")
rows = {}
for resource, label in [("page", "`/` (HTML)"), ("json", "`/api/v2/summary.json`")]:
    for server in ["rampart", "nginx"]:
        rps, p50, p99, non2xx, _ = rows[(resource, server)] = median_round(f"{resource}-{server}")
        print(f"| {label} | {server} | {rps:,.0f} | {p50:.3f} | {p99:.3f} | {non2xx} |")
print()
print("| resource | rampart/nginx throughput | rampart/nginx p99 |")
print("|---|---:|---:|")
for resource, label in [("page", "`/` (HTML)"), ("json", "`/api/v2/summary.json`")]:
    r, n = rows[(resource, "rampart")], rows[(resource, "nginx")]
    print(f"| {label} | {r[0] / n[0]:.2f} | {r[2] / n[2]:.2f} |")
print()
probe = open(f"{out}/probe.txt").read().splitlines()
visible = [float(line.split()[2]) for line in probe if line.startswith("update_visible_ms") and line.split()[2] != "never"]
never = [line for line in probe if line.endswith("never")]
api = next((line for line in probe if line.startswith("api_ms")), "api_ms (missing)")
print("During a stampede on `/` (wrk, same settings):")
print()
if visible:
    print(f"- an incident update showed on the page after {', '.join(f'{v:.0f}' for v in visible)} ms "
          f"(median {statistics.median(visible):.0f} ms){'; ' + str(len(never)) + ' never showed' if never else ''}")
else:
    print("- no incident update showed on the page within 30 s")
print(f"- the operator API (`GET /v1/incidents`, 100 reads): {api.replace('api_ms ', '')} ms")
