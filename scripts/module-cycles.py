#!/usr/bin/env python3
"""Lists files in the workspace's crates that import each other in a circle.

Each `crates/*/src/**.rs` file is a module; an arrow runs from a file to the module file that
every `crate::a::b` path in it names (the deepest file that exists). A parent naming its own
children (declaring or re-exporting them) is structure, not an arrow. Exits 1 if any circle.

    python3 scripts/module-cycles.py
"""
import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parent.parent
PATH = re.compile(r"\bcrate((?:::[a-z_][a-z0-9_]*)+)")
SUPER = re.compile(r"\bsuper((?:::[a-z_][a-z0-9_]*)*)")
circles = 0
for src in sorted(root.glob("crates/*/src")):
    def module_file(parts):
        """The file of the deepest module `parts` names, or None."""
        for n in range(len(parts), -1, -1):
            base = src.joinpath(*parts[:n])
            for f in (base.with_suffix(".rs") if n else None, base / "mod.rs", base / "lib.rs", base / "main.rs"):
                if f is not None and f.is_file():
                    return f
        return None

    def module_parts(f):
        rel = f.relative_to(src).with_suffix("").parts
        return list(rel[:-1]) if rel[-1] in ("mod", "lib", "main") else list(rel)

    edges = {}
    for f in src.rglob("*.rs"):
        # Comments name modules without depending on them.
        text = "\n".join(re.sub(r"//.*$", "", line) for line in f.read_text().splitlines())
        mine = module_parts(f)
        targets = set()
        for m in PATH.finditer(text):
            targets.add(module_file(m.group(1).split("::")[1:]))
        for m in SUPER.finditer(text):
            targets.add(module_file(mine[:-1] + m.group(1).split("::")[1:]))
        edges[f] = {
            t for t in targets
            if t is not None and t != f
            # a parent naming its own children is structure
            and not (module_parts(t)[: len(mine)] == mine and len(module_parts(t)) > len(mine))
        }
    # strongly connected components (Tarjan)
    index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(comp)

    sys.setrecursionlimit(10_000)
    for v in list(edges):
        if v not in index:
            visit(v)
    for comp in comps:
        circles += 1
        names = sorted(str(c.relative_to(root)) for c in comp)
        print("circle:", ", ".join(names))
        for a in comp:
            for b in sorted(edges[a] & set(comp)):
                print(f"  {a.relative_to(root)} -> {b.relative_to(root)}")
print(f"{circles} circles")
sys.exit(1 if circles else 0)
