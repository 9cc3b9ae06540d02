#!/usr/bin/env python3
"""Prints the Markdown tables of bench/last-run.json (written by bench/run.py)."""
import json
import os

run = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "last-run.json")))
print(f"Run started {run.get('started', '?')}. wrk: 2 threads, {run['connections']} connections, {run['seconds']} s per run; "
      f"{run['rounds']} interleaved rounds per pair (5 for RLS), medians; {run['tenants']} tenants with pre-minted tokens; "
      f"{run.get('filler_tenants', 0):,} filler tenants in the big catalog.\n")
print("| comparison | A | B | A / B | p50 ms (A, B) | rounds A | rounds B | errors |")
print("|---|---:|---:|---:|---|---|---|---:|")
for r in run["results"]:
    keys = [k for k in r if k.endswith("_rps") or k.endswith("_tps")]
    if len(keys) != 2:
        continue
    a, b = r[keys[0]], r[keys[1]]
    print(f"| {r['label']} | {a} | {b} | **{r['ratio']:.2f}** | {r['p50_ms'][0]}, {r['p50_ms'][1]} | "
          f"{' '.join(map(str, r['rounds'][0]))} | {' '.join(map(str, r['rounds'][1]))} | {r['errors']} |")
alone = [r for r in run["results"] if "rps" in r]
if alone:
    print("\n| measured alone | req/s | p50 ms | errors |")
    print("|---|---:|---:|---:|")
    for r in alone:
        print(f"| {r['label']} | {r['rps']} | {r['p50_ms']} | {r['errors']} |")
