#!/usr/bin/env python3
"""Agent-run benchmarks, measured side by side in one run (results: docs/benchmarks.md).

    cargo build --release && cargo build --release -p tenantd-server --example bare \\
      && cargo build --release --example bench_runs
    TENANTD_TEST_PG=postgres://postgres@127.0.0.1:5432/postgres python3 bench/runs.py
    BENCH_RUNS=fairness python3 bench/runs.py        # one part: lifecycle | fairness | lease
    BENCH_BACKENDS=postgres ...                       # one backend
    python3 bench/report.py bench/last-run-runs.json # (the JSON is written there)

Parts, on SQLite and (with TENANTD_TEST_PG) PostgreSQL:

- lifecycle: create, lease, one usage report, complete — over HTTP with authentication,
  tenancy, audit and (PostgreSQL) RLS, against the bare harness (examples/bare.rs) doing the
  same store transactions on the same cell; interleaved rounds, runs/s and the ratio.
- fairness: 50 quiet tenants submitting 1 run/s each, 32 worker slots, runs of 200 ms —
  alone, then beside a noisy tenant with 10,000 queued runs; the quiet p99 wait (created →
  leased, the server's own times). Throughput beside plain FIFO: the same workload on a
  deployment with `run_scheduling = fifo` (the oldest queued run of any tenant first, the
  same transactions otherwise); alone, fair and FIFO in BENCH_FIFO_ROUNDS rounds. One
  tenant's 10,000 runs drained alone, for reference. And two noisy tenants, one with its
  backlog on 1 agent, one spread over 100 agents: the leases each got.
- lease: p99 latency of POST /v1/workers/lease at 100 queued runs (10 tenants) and at
  100,000 queued runs (10,000 tenants, bulk-loaded), two deployments side by side.
"""

import json
import os
import sqlite3
import statistics
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as base_bench  # noqa: E402  (the Deployment, req, port and wait helpers)

ROOT = base_bench.ROOT
GEN = os.path.join(ROOT, "target", "release", "examples", "bench_runs")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
CONNS = int(os.environ.get("BENCH_CONNECTIONS", "16"))
PARTS = os.environ.get("BENCH_RUNS", "lifecycle,fairness,lease").split(",")
FAIR_SECONDS = int(os.environ.get("BENCH_FAIR_SECONDS", "20"))
NOISY = int(os.environ.get("BENCH_NOISY_RUNS", "10000"))
FIFO_ROUNDS = int(os.environ.get("BENCH_FIFO_ROUNDS", "2"))

base_bench.PLANS = """plans:
  free: {name: Free, self_serve: true, quotas: {users: 1}, rate_limits: {api_requests: 100}}
  runs:
    name: Runs
    self_serve: true
    quotas: {tokens: ~, concurrent_runs: 100000, queued_runs: 1000000}
    features: [basic_orchestration]
    rate_limits: {api_requests: 1000000000, agent_spawns: 1000000000}
  enterprise: {name: Enterprise, quotas: {}, features: [audit_logs, basic_orchestration], rate_limits: {api_requests: 1000000000}}
"""


def gen(*args):
    out = subprocess.run([GEN, *map(str, args)], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit("bench_runs failed: " + out.stderr[-800:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def tenants(dep, base, n, tag, agents=1):
    """n tenants on the runs plan, each with `agents` agents: `token tenant agent` lines (one
    per agent)."""
    lines = []
    for i in range(n):
        up = base_bench.req(base, "POST", "/v1/auth/signup", {"email": f"r{i}@{tag}.test", "password": "bench-password-1", "name": "R",
                                                             "tenant": {"name": "R", "slug": f"{tag}-{i}", "plan": "runs"}})
        token, tid = up["access_token"], up["tenant"]["id"]
        for j in range(agents):
            agent = base_bench.req(base, "POST", "/v1/agents", {"name": f"a{j}", "spec": {}}, token)["id"]
            lines.append(f"{token} {tid} {agent}")
    return lines


def worker(base, admin):
    return base_bench.req(base, "POST", "/v1/api-keys", {"name": "w", "role": "worker"}, admin)["key"]


def admin_token(base):
    return base_bench.req(base, "POST", "/v1/auth/login", {"email": "root@bench.test", "password": "bench-admin-password"})["access_token"]


def file(dep, name, lines):
    path = os.path.join(dep.work, name)
    with open(path, "w") as f:
        f.write("\n".join(lines) + ("\n" if lines else ""))
    return path


def lifecycle(kind, out):
    dep = base_bench.Deployment(kind)
    try:
        base = dep.node()
        bare = dep.bare()
        wk = worker(base, admin_token(base))
        ts = file(dep, "tenants.txt", tenants(dep, base, 40, uuid.uuid4().hex[:6]))
        a, b = [], []
        for i in range(ROUNDS):
            pair = [lambda: a.append(gen("lifecycle", base, wk, ts, SECONDS, CONNS)),
                    lambda: b.append(gen("lifecycle", bare, "-", ts, SECONDS, CONNS))]
            for f in (pair if i % 2 == 0 else pair[::-1]):
                f()
        ma, mb = statistics.median(r["runs_per_s"] for r in a), statistics.median(r["runs_per_s"] for r in b)
        row = {"backend": kind, "part": "lifecycle", "tenantd_runs_per_s": round(ma, 1), "bare_runs_per_s": round(mb, 1),
               "ratio": round(ma / mb, 3), "errors": sum(r["errors"] for r in a + b),
               "rounds": [[round(r["runs_per_s"]) for r in a], [round(r["runs_per_s"]) for r in b]]}
        print(json.dumps(row), flush=True)
        out.append(row)
    finally:
        dep.close()


def fairness(kind, out):
    """Each scenario on a fresh deployment (nothing left over from the previous one)."""
    tag = uuid.uuid4().hex[:6]
    results = {}

    def scenario(name, noisy_agents, quiet=True, scheduling="fair", jitter=0):
        dep = base_bench.Deployment(kind)
        try:
            base = dep.node(TENANTD_RUN_SCHEDULING=scheduling)
            wk = worker(base, admin_token(base))
            quiet_file = file(dep, "quiet.txt", tenants(dep, base, 50, f"{tag}q") if quiet else [])
            noisy = []
            for k, agents in enumerate(noisy_agents):
                lines = tenants(dep, base, 1, f"{tag}n{k}", agents)
                noisy.append(lines[0].split()[1])
                sub = gen("submit", base, file(dep, f"noisy{k}.txt", lines), NOISY, 32)
                assert sub["admitted"] == NOISY, sub
            r = gen("fairness", base, wk, quiet_file, FAIR_SECONDS, 32, 200, jitter)
            r["noisy_leases"] = [r["leases_by_tenant"].get(t, 0) for t in noisy]
            del r["leases_by_tenant"]
            results.setdefault(name, []).append(r)
            print(json.dumps({"backend": kind, "scenario": name, **r}), flush=True)
        finally:
            dep.close()

    # The quiet tenants alone, beside the backlog, and beside it under FIFO scheduling
    # (run_scheduling = fifo: the oldest run of any tenant first), in rounds whose order
    # alternates so drift hits all three alike; medians over the rounds.
    for i in range(FIFO_ROUNDS):
        trio = [lambda: scenario("quiet alone", []),
                lambda: scenario("quiet + noisy 10k", [1]),
                lambda: scenario("quiet + noisy 10k, fifo", [1], scheduling="fifo"),
                lambda: scenario("quiet alone, runs 200±40 ms", [], jitter=40),
                lambda: scenario("quiet + noisy 10k, runs 200±40 ms", [1], jitter=40)]
        for f in (trio if i % 2 == 0 else trio[::-1]):
            f()
    scenario("one tenant's 10k alone", [1], quiet=False)
    scenario("two noisy: 1 agent vs 100 agents", [1, 100], quiet=False)
    med = lambda name, key: statistics.median(r[key] for r in results[name])
    fair_rate, fifo_rate = med("quiet + noisy 10k", "runs_per_s"), med("quiet + noisy 10k, fifo", "runs_per_s")
    alone_p99, noisy_p99 = med("quiet alone", "submitted_wait_p99_ms"), med("quiet + noisy 10k", "submitted_wait_p99_ms")
    row = {"backend": kind, "part": "fairness",
           "quiet_p99_ms_alone": round(alone_p99, 1),
           "quiet_p99_ms_with_noisy": round(noisy_p99, 1),
           # Under FIFO the quiet tenants' runs wait behind the backlog: often none is leased.
           "quiet_leased_with_noisy_fifo": [r["submitted_leases"] for r in results["quiet + noisy 10k, fifo"]],
           "p99_ratio": round(noisy_p99 / max(alone_p99, 1.0), 2),
           # Runs of exactly 200 ms keep workers in step: slots free in clumps, and a quiet run
           # waits for the next clump. The same with run lengths spread ±40 ms:
           "quiet_p99_ms_alone_jittered": round(med("quiet alone, runs 200±40 ms", "submitted_wait_p99_ms"), 1),
           "quiet_p99_ms_with_noisy_jittered": round(med("quiet + noisy 10k, runs 200±40 ms", "submitted_wait_p99_ms"), 1),
           "lease_gap_p99_ms_with_noisy": round(med("quiet + noisy 10k", "lease_gap_p99_ms"), 1),
           "lease_gap_p99_ms_with_noisy_jittered": round(med("quiet + noisy 10k, runs 200±40 ms", "lease_gap_p99_ms"), 1),
           "runs_per_s_fair": round(fair_rate, 1), "runs_per_s_fifo": round(fifo_rate, 1),
           "throughput_vs_fifo": round(fair_rate / fifo_rate, 3),
           "runs_per_s_fair_rounds": [round(r["runs_per_s"], 1) for r in results["quiet + noisy 10k"]],
           "runs_per_s_fifo_rounds": [round(r["runs_per_s"], 1) for r in results["quiet + noisy 10k, fifo"]],
           "runs_per_s_one_tenant_alone": round(med("one tenant's 10k alone", "runs_per_s"), 1),
           "leases_1_agent_vs_100_agents": results["two noisy: 1 agent vs 100 agents"][0]["noisy_leases"],
           "scenarios": results}
    print(json.dumps({k: v for k, v in row.items() if k != "scenarios"}), flush=True)
    out.append(row)


def seed_queued(dep, tenants_n, per_tenant):
    """Bulk-loads queued runs straight into the cell: `tenants_n` tenants with `per_tenant`
    runs each, and their scheduler rows (runnable, no slot limit)."""
    now = "2026-01-01T00:00:00.000000Z"
    runs, ready = [], []
    for i in range(tenants_n):
        t = f"00000009-0000-7000-8000-{i:012x}"
        ready.append((t, "2000-01-01T00:00:00.000000Z", 1, 1, None, None))
        for j in range(per_tenant):
            rid = f"0000000a-{j:04x}-7000-8000-{i:012x}"
            runs.append((rid, t, "00000000-0000-7000-8000-000000000000", "queued", "m", "{}", None, 100, 0, 0, None, now, now))
    cols = "id, tenant_id, agent_id, status, model, input, max_tokens, token_hold, tokens_used, attempt, idempotency_key, created_at, updated_at"
    if dep.kind == "postgres":
        import csv
        for table, c, rows in (("runs", cols, runs), ("run_ready", "tenant_id, served_at, runnable, active, slots, token_limit", ready)):
            path = os.path.join(dep.work, f"{table}.csv")
            with open(path, "w", newline="") as f:
                csv.writer(f).writerows([["" if v is None else v for v in r] for r in rows])
            subprocess.run(["psql", dep.super_url(1), "-q", "-c", f"\\copy {table} ({c}) FROM '{path}' WITH (FORMAT csv)"], check=True, capture_output=True)
        subprocess.run(["psql", dep.super_url(1), "-q", "-c", "ANALYZE"], check=True, capture_output=True)
    else:
        db = sqlite3.connect(dep.cell_url[len("sqlite://"):], timeout=60)
        with db:
            db.executemany(f"INSERT INTO runs ({cols}) VALUES ({', '.join('?' * 13)})", runs)
            db.executemany("INSERT INTO run_ready (tenant_id, served_at, runnable, active, slots, token_limit) VALUES (?, ?, ?, ?, ?, ?)", ready)
        db.execute("ANALYZE")
        db.close()


def requeue_all(dep):
    sql = "UPDATE runs SET status = 'queued', lease_id = NULL, lease_until = NULL; UPDATE run_ready SET runnable = 1; DELETE FROM run_leases;"
    if dep.kind == "postgres":
        subprocess.run(["psql", dep.super_url(1), "-q", "-c", sql], check=True, capture_output=True)
    else:
        db = sqlite3.connect(dep.cell_url[len("sqlite://"):], timeout=60)
        with db:
            db.executescript(sql)
        db.close()


def lease_cost(kind, out):
    small, big = base_bench.Deployment(kind), base_bench.Deployment(kind)
    try:
        bs, bb = small.node(), big.node()
        ws, wb = worker(bs, admin_token(bs)), worker(bb, admin_token(bb))
        seed_queued(small, 10, 10)
        seed_queued(big, 10_000, 10)
        ls, lb = [], []
        for i in range(max(ROUNDS, 5) * 2):
            requeue_all(small)
            pair = [lambda: ls.extend(gen("lease", bs, ws, 100, 4)["latencies_ms"]),
                    lambda: lb.extend(gen("lease", bb, wb, 100, 4)["latencies_ms"])]
            for f in (pair if i % 2 == 0 else pair[::-1]):
                f()
        p = lambda v, q: sorted(v)[max(0, int(len(v) * q / 100 + 0.999) - 1)]
        row = {"backend": kind, "part": "lease", "leases_each": [len(ls), len(lb)],
               "p50_ms_100_queued": round(p(ls, 50), 2), "p99_ms_100_queued": round(p(ls, 99), 2),
               "p50_ms_100k_queued": round(p(lb, 50), 2), "p99_ms_100k_queued": round(p(lb, 99), 2),
               "p99_ratio": round(p(lb, 99) / p(ls, 99), 2)}
        print(json.dumps(row), flush=True)
        out.append(row)
    finally:
        small.close()
        big.close()


def main():
    for path in (base_bench.TENANTD, base_bench.BARE, GEN):
        if not os.path.exists(path):
            raise SystemExit(f"missing {path}: build it first (see this file's docstring)")
    out, started = [], time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    kinds = ["sqlite"] + (["postgres"] if os.environ.get("TENANTD_TEST_PG") else [])
    if os.environ.get("BENCH_BACKENDS"):
        kinds = [k for k in kinds if k in os.environ["BENCH_BACKENDS"].split(",")]
    for kind in kinds:
        if "lifecycle" in PARTS:
            lifecycle(kind, out)
        if "lease" in PARTS:
            lease_cost(kind, out)
        if "fairness" in PARTS:
            fairness(kind, out)
    with open(os.path.join(ROOT, "bench", "last-run-runs.json"), "w") as f:
        json.dump({"started": started, "rounds": ROUNDS, "seconds": SECONDS, "connections": CONNS, "results": out}, f, indent=1)


if __name__ == "__main__":
    main()
