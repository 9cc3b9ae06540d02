#!/usr/bin/env python3
"""Prints the Markdown table of bench/last-run.json (written by bench/run.py)."""
import json
import os

run = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "last-run.json")))
print(f"wrk: 2 threads, {run['connections']} connections, {run['seconds']} s per run; "
      f"{run['rounds']} interleaved rounds per pair, medians; {run['tenants']} tenants with pre-minted tokens.\n")
print("| comparison | A req/s | B req/s | A / B | p50 ms (A, B) | rounds A | rounds B | errors |")
print("|---|---:|---:|---:|---|---|---|---:|")
for r in run["results"]:
    keys = [k for k in r if k.endswith("_rps")]
    a, b = r[keys[0]], r[keys[1]]
    print(f"| {r['label']} | {a} | {b} | **{r['ratio']:.2f}** | {r['p50_ms'][0]}, {r['p50_ms'][1]} | "
          f"{' '.join(map(str, r['rounds'][0]))} | {' '.join(map(str, r['rounds'][1]))} | {r['errors']} |")
