#!/usr/bin/env python3
"""tenantd benchmarks, measured side by side in one run (see docs/benchmarks.md).

    cargo build --release && cargo build --release -p tenantd-server --example bare
    TENANTD_TEST_PG=postgres://postgres@127.0.0.1:5432/postgres python3 bench/run.py

For each backend (SQLite; PostgreSQL when TENANTD_TEST_PG names a superuser URL): tenantd and
the bare handler (the same store transactions, no auth/tenancy/limits) serve the same cell;
wrk rotates pre-minted tokens of many tenants. Rounds are interleaved (tenantd, bare, tenantd,
...), three of each, and the median is reported, because this machine drifts between runs.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TENANTD = os.path.join(ROOT, "target", "release", "tenantd")
BARE = os.path.join(ROOT, "target", "release", "examples", "bare")
LUA = os.path.join(ROOT, "bench", "load.lua")
SECONDS = int(os.environ.get("BENCH_SECONDS", "4"))
CONNS = int(os.environ.get("BENCH_CONNECTIONS", "16"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
TENANTS = int(os.environ.get("BENCH_TENANTS", "40"))
AGENTS = 20
PLANS = """plans:
  free: {name: Free, self_serve: true, quotas: {users: 1}, rate_limits: {api_requests: 100}}
  bench: {name: Bench, self_serve: true, quotas: {}, rate_limits: {api_requests: 1000000000}}
  nolimit: {name: No limit, self_serve: true, quotas: {}}
  enterprise: {name: Enterprise, quotas: {}, features: [audit_logs], rate_limits: {api_requests: 1000000000}}
"""


def req(base, method, path, body=None, token=None):
    h = {"Content-Type": "application/json"}
    if token:
        h["Authorization"] = "Bearer " + token
    r = urllib.request.Request(base + path, data=json.dumps(body).encode() if body is not None else None, method=method, headers=h)
    with urllib.request.urlopen(r, timeout=30) as resp:
        return json.loads(resp.read() or b"null")


def wait(base):
    for _ in range(300):
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1)
            return
        except Exception:
            time.sleep(0.1)
    raise SystemExit("server did not start: " + base)


def port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wrk(base, mode, scenario, tokens):
    env = dict(os.environ, BENCH_TOKENS=tokens, BENCH_MODE=mode, BENCH_SCENARIO=scenario, BENCH_NONCE=uuid.uuid4().hex[:8])
    out = subprocess.run(["wrk", "-t2", f"-c{CONNS}", f"-d{SECONDS}s", "-s", LUA, base], env=env, capture_output=True, text=True)
    line = next((l for l in out.stderr.splitlines() if l.startswith("RESULT ")), None)
    if not line:
        raise SystemExit("wrk failed: " + out.stderr[-500:] + out.stdout[-500:])
    r = json.loads(line[7:])
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    return r


def setup_tenants(base, plan, n, tag):
    lines = []
    for i in range(n):
        up = req(base, "POST", "/v1/auth/signup", {"email": f"b{i}@{tag}-{plan}.test", "password": "bench-password-1", "name": "B",
                                                   "tenant": {"name": "B", "slug": f"{tag}-{plan}-{i}", "plan": plan}})
        token, tid = up["access_token"], up["tenant"]["id"]
        ids = [req(base, "POST", "/v1/agents", {"name": f"seed-{j}", "spec": {"model": "small"}}, token)["id"] for j in range(AGENTS)]
        lines.append(" ".join([token, tid] + ids))
    return lines


def compare(label, runs_a, runs_b, name_a, name_b, out):
    """Interleaved rounds of two configurations; medians and the ratio a/b."""
    ra, rb = [], []
    for _ in range(ROUNDS):
        ra.append(runs_a())
        rb.append(runs_b())
    ma, mb = statistics.median(r["rps"] for r in ra), statistics.median(r["rps"] for r in rb)
    bad = sum(r["non2xx"] + r["socket_errors"] for r in ra + rb)
    row = {"label": label, name_a: round(ma), name_b: round(mb), "ratio": round(ma / mb, 3),
           "p50_ms": [round(statistics.median(r["p50_us"] for r in ra) / 1000, 2), round(statistics.median(r["p50_us"] for r in rb) / 1000, 2)],
           "errors": bad, "rounds": [[round(r["rps"]) for r in ra], [round(r["rps"]) for r in rb]]}
    print(json.dumps(row), flush=True)
    out.append(row)


def run_backend(kind, out):
    work = tempfile.mkdtemp(prefix="tenantd-bench-")
    with open(os.path.join(work, "plans.yaml"), "w") as f:
        f.write(PLANS)
    cfg = os.path.join(work, "tenantd.toml")
    admin = os.environ.get("TENANTD_TEST_PG")
    dbs = []
    with open(cfg, "w") as f:
        f.write(f'plans_file = "{work}/plans.yaml"\naccess_ttl_secs = 7200\nauth_rate_per_ip = 100000000\n'
                'auth_rate_per_account = 100000000\npassword_hashing = "insecure-fast-for-tests"\n')
        if kind == "postgres":
            host = admin.split("@", 1)[1].split("/", 1)[0]
            for role in ("tenantd_bench_owner", "tenantd_bench_app"):
                subprocess.run(["psql", admin, "-q", "-c", f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN CREATE ROLE {role} LOGIN; END IF; END $$"], capture_output=True)
            subprocess.run(["psql", admin, "-q", "-c", "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tenantd_app') THEN CREATE ROLE tenantd_app NOLOGIN; END IF; END $$"], capture_output=True)
            subprocess.run(["psql", admin, "-q", "-c", "GRANT tenantd_app TO tenantd_bench_owner WITH ADMIN OPTION"], capture_output=True)
            tag = uuid.uuid4().hex[:10]
            dbs = [f"tdb_{tag}_cat", f"tdb_{tag}_cell"]
            for db in dbs:
                subprocess.run(["psql", admin, "-q", "-c", f"CREATE DATABASE {db} OWNER tenantd_bench_owner"], check=True, capture_output=True)
            u = lambda user, db: f"postgres://{user}@{host}/{db}"
            f.write(f'[catalog]\nurl = "{u("tenantd_bench_app", dbs[0])}"\nmigrate_url = "{u("tenantd_bench_owner", dbs[0])}"\n'
                    f'[[cells]]\nname = "bench"\nurl = "{u("tenantd_bench_app", dbs[1])}"\nmigrate_url = "{u("tenantd_bench_owner", dbs[1])}"\n')
            cell_url = u("tenantd_bench_app", dbs[1])
        else:
            cell_url = "sqlite://" + os.path.join(work, "data", "cells", "local.db")
    tp, bp = port(), port()
    env = dict(os.environ, TENANTD_LISTEN=f"127.0.0.1:{tp}", TENANTD_DATA_DIR=os.path.join(work, "data"), TENANTD_CONFIG=cfg,
               TENANTD_ADMIN_EMAIL="root@bench.test", TENANTD_ADMIN_PASSWORD="bench-admin-password", TENANTD_LOG="error")
    for k in ("TENANTD_TEST_PG", "TENANTD_TEST_BACKEND"):
        env.pop(k, None)
    procs = [subprocess.Popen([TENANTD, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        base = f"http://127.0.0.1:{tp}"
        wait(base)
        tag = uuid.uuid4().hex[:6]
        limited = setup_tenants(base, "bench", TENANTS // 2, tag)
        unlimited = setup_tenants(base, "nolimit", TENANTS // 2, tag)
        files = {}
        for name, lines in (("limited", limited), ("unlimited", unlimited), ("all", limited + unlimited)):
            files[name] = os.path.join(work, name + ".txt")
            with open(files[name], "w") as f:
                f.write("\n".join(lines) + "\n")
        procs.append(subprocess.Popen([BARE, cell_url, f"127.0.0.1:{bp}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        bare = f"http://127.0.0.1:{bp}"
        wait_bare(bare)
        for scenario in ("get", "list", "create"):
            compare(f"{kind}: {scenario}: tenantd vs bare handler",
                    lambda: wrk(base, "tenantd", scenario, files["limited"]), lambda: wrk(bare, "bare", scenario, files["limited"]),
                    "tenantd_rps", "bare_rps", out)
        compare(f"{kind}: get: rate limiter on vs off (tenantd)",
                lambda: wrk(base, "tenantd", "get", files["limited"]), lambda: wrk(base, "tenantd", "get", files["unlimited"]),
                "limiter_on_rps", "limiter_off_rps", out)
        if kind == "postgres":
            tables = ["resources", "resource_shares", "quota_counters", "audit_events", "audit_heads", "files"]
            sup = admin.rsplit("/", 1)[0] + "/" + dbs[1]

            def rls(on):
                for t in tables:
                    subprocess.run(["psql", sup, "-q", "-c", f"ALTER TABLE {t} {'ENABLE' if on else 'DISABLE'} ROW LEVEL SECURITY"], check=True, capture_output=True)

            def with_rls(on, scenario):
                rls(on)
                return wrk(base, "tenantd", scenario, files["limited"])

            for scenario in ("get", "list"):
                compare(f"postgres: {scenario}: RLS on vs off (tenantd)", lambda: with_rls(True, scenario), lambda: with_rls(False, scenario),
                        "rls_on_rps", "rls_off_rps", out)
            rls(True)
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
        for db in dbs:
            subprocess.run(["psql", admin, "-q", "-c", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"], capture_output=True)


def wait_bare(base):
    for _ in range(300):
        try:
            urllib.request.urlopen(base + "/v1/agents", timeout=1)
        except urllib.error.HTTPError:
            return
        except Exception:
            time.sleep(0.1)
            continue
        return
    raise SystemExit("bare handler did not start")


def main():
    for b in (TENANTD, BARE):
        if not os.path.exists(b):
            raise SystemExit(f"missing {b}: build first (see the docstring)")
    out = []
    run_backend("sqlite", out)
    if os.environ.get("TENANTD_TEST_PG"):
        run_backend("postgres", out)
    else:
        print("no TENANTD_TEST_PG: PostgreSQL figures skipped", file=sys.stderr)
    with open(os.path.join(ROOT, "bench", "last-run.json"), "w") as f:
        json.dump({"seconds": SECONDS, "connections": CONNS, "rounds": ROUNDS, "tenants": TENANTS, "results": out}, f, indent=1)


if __name__ == "__main__":
    import urllib.error  # noqa: F401
    main()
