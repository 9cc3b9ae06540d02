#!/usr/bin/env python3
"""The architecture's rules, checked (docs/architecture.md, "Rules the build checks").

1. No Rust source file over 600 lines (crates/, src/, tests/).
2. No module imports another that imports it back, inside each crate, at file granularity
   (a path `crate::a::b` or `super::b` names the deepest module file that exists).
3. tenantd-app has no HTTP stack below it (axum, hyper, tower); tenantd-core does no I/O
   (no sqlx, no tokio).

Run from the repository root: `python3 scripts/check-structure.py`. Exits 1 naming every
breach.
"""

import glob
import os
import re
import subprocess
import sys

MAX_LINES = 600
CRATES = sorted(glob.glob("crates/*/src")) + ["src"]
FORBIDDEN = {
    "tenantd-app": ["axum", "hyper", "tower"],
    "tenantd-core": ["sqlx", "tokio"],
}


def long_files():
    out = []
    for root in ["crates", "src", "tests"]:
        for f in glob.glob(f"{root}/**/*.rs", recursive=True):
            n = sum(1 for _ in open(f, encoding="utf-8"))
            if n > MAX_LINES:
                out.append(f"{f}: {n} lines (at most {MAX_LINES})")
    return out


def module_of(root, path):
    rel = os.path.relpath(path, root)[:-3]
    if rel.endswith("/mod"):
        rel = rel[: -len("/mod")]
    return rel.replace("/", "::")


def cycles():
    out = []
    for root in CRATES:
        mods = {}
        for f in glob.glob(f"{root}/**/*.rs", recursive=True):
            m = module_of(root, f)
            if m in ("lib", "main"):
                continue
            mods[m] = open(f, encoding="utf-8").read()
        deps = {m: set() for m in mods}
        for m, text in mods.items():
            parent = "::".join(m.split("::")[:-1])
            paths = re.findall(r"crate::([a-z_][a-z0-9_:]*)", text)
            paths += [
                f"{parent}::{p}" if parent else p
                for p in re.findall(r"super::([a-z_][a-z0-9_:]*)", text)
            ]
            for p in re.findall(r"use crate::\{([^}]*)\}", text):
                paths += re.findall(r"\b([a-z_][a-z0-9_]*)\b", p)
            for p in paths:
                parts = p.strip(":").split("::")
                for k in range(len(parts), 0, -1):
                    cand = "::".join(parts[:k])
                    if cand in mods:
                        if cand != m and not m.startswith(cand + "::") and not cand.startswith(m + "::"):
                            deps[m].add(cand)
                        break
        seen = set()
        for a in deps:
            for b in deps[a]:
                if a in deps.get(b, ()) and (b, a) not in seen:
                    seen.add((a, b))
                    out.append(f"{root}: {a} and {b} import each other")
    return out


def forbidden_deps():
    out = []
    for crate, names in FORBIDDEN.items():
        tree = subprocess.run(
            ["cargo", "tree", "-p", crate, "-e", "normal", "--prefix", "none", "--locked"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        present = {line.split()[0] for line in tree.splitlines() if line.strip()}
        for n in names:
            if n in present:
                out.append(f"{crate} depends on {n}")
    return out


def main():
    problems = long_files() + cycles() + forbidden_deps()
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        sys.exit(1)
    print("structure ok: no file over 600 lines, no import cycle, tenantd-app without an HTTP stack, tenantd-core without I/O")


if __name__ == "__main__":
    main()
