"""What share of a process's CPU samples passes through given code.

    perf record -F 999 --call-graph dwarf -p PID -o perf.data -- sleep 5
    perf script -i perf.data | python3 bench/perf_share.py

Each sample (one stack) counts once, towards the first category whose pattern a frame of it
matches (or whose thread name it has); inlined frames count, since perf names them. A measure of
a cost that does not depend on how fast the machine happens to be: the share of the process's
own time, sampled, not a difference between two noisy runs.
"""
import re
import sys

# (label, thread name or None, pattern over the stack's frames or None)
CATEGORIES = [
    ("access log: the writer thread (the file's writes)", "access-log", None),
    ("access log: on the request's path (the entry, the line, the buffer)", None,
     re.compile(r"rampart_gateway::access_log")),
    ("tracing: ids, traceparent, spans, the exporter", None,
     re.compile(r"rampart_gateway::trace::|rampart_gateway::trace_context")),
]


def main():
    counts = [0] * len(CATEGORIES)
    total = 0
    for sample in sys.stdin.read().split("\n\n"):
        lines = sample.strip("\n").split("\n")
        if not lines or not lines[0].strip():
            continue
        total += 1
        thread = lines[0].split()[0]
        frames = "\n".join(lines[1:])
        for i, (_, name, pattern) in enumerate(CATEGORIES):
            if (name and thread == name) or (pattern and pattern.search(frames)):
                counts[i] += 1
                break
    if total == 0:
        print("no samples")
        return
    print(f"| where the time goes ({total:,} samples) | share of the process's CPU |")
    print("|---|---:|")
    for (label, _, _), n in zip(CATEGORIES, counts):
        print(f"| {label} | {100 * n / total:.2f} % |")
    print(f"| **all of the access log and tracing** | **{100 * sum(counts) / total:.2f} %** |")


main()
