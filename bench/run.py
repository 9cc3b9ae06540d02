#!/usr/bin/env python3
"""tenantd benchmarks, measured side by side in one run (see docs/benchmarks.md).

    apt-get install -y wrk                      # the load generator (pgbench comes with PostgreSQL)
    cargo build --release && cargo build --release -p tenantd-server --example bare
    TENANTD_TEST_PG=postgres://postgres@127.0.0.1:5432/postgres python3 bench/run.py
    BENCH_ONLY=bare ... python3 bench/run.py    # only tenantd vs the bare handler
    BENCH_ONLY=events BENCH_BASELINE=/tmp/tenantd-pre-events ... python3 bench/run.py
        # events and webhooks; the baseline is a release build of fb82672 (before the event log)
    python3 bench/report.py                     # the Markdown tables of bench/last-run.json

For each backend (SQLite; PostgreSQL when TENANTD_TEST_PG names a superuser URL):

- tenantd vs the bare handler (the same store transactions, no auth/tenancy/limits) on the
  same cell; wrk rotates pre-minted tokens of many tenants;
- rate limiter on vs off; warm vs cold credentials (cold: a node with its credential cache
  off, so every request verifies its token and reads the catalog, as a token's first use does);
- on PostgreSQL: RLS on vs off, and the bare handler vs pgbench running the same transaction;
- 10 tenants vs 100,000 tenants in the catalog (two deployments side by side; the big one
  gets 99,990 filler tenants with a user, a membership, a session and two agents each,
  bulk-loaded, plus the same 10 tenants made through the API);
- login (argon2id at OWASP parameters) alone.

Rounds are interleaved (A, B, A, B, ...), medians reported, because this machine drifts.
"""

import csv
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
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
FILLER = int(os.environ.get("BENCH_FILLER_TENANTS", "99990"))
# BENCH_ONLY=bare: only the tenantd-vs-bare-handler comparisons (a few minutes instead of ~20).
ONLY_BARE = os.environ.get("BENCH_ONLY") == "bare"
# BENCH_ONLY=events: the cost of webhook deliveries on the create path, and delivery latency
# from commit to receiver with 100 endpoints.
ONLY_EVENTS = os.environ.get("BENCH_ONLY") == "events"
# BENCH_BASELINE=PATH: also compare this tenantd with another build of it (PATH) on the same
# deployment — the way to show a refactoring changed nothing.
BASELINE = os.environ.get("BENCH_BASELINE")
AGENTS = 20
PLANS = """plans:
  free: {name: Free, self_serve: true, quotas: {users: 1}, rate_limits: {api_requests: 100}}
  bench: {name: Bench, self_serve: true, quotas: {}, rate_limits: {api_requests: 1000000000}}
  nolimit: {name: No limit, self_serve: true, quotas: {}}
  enterprise: {name: Enterprise, quotas: {}, features: [audit_logs], rate_limits: {api_requests: 1000000000}}
"""
NOW = "2026-01-01T00:00:00.000000Z"


def req(base, method, path, body=None, token=None):
    h = {"Content-Type": "application/json"}
    if token:
        h["Authorization"] = "Bearer " + token
    r = urllib.request.Request(base + path, data=json.dumps(body).encode() if body is not None else None, method=method, headers=h)
    with urllib.request.urlopen(r, timeout=30) as resp:
        return json.loads(resp.read() or b"null")


def wait(base, path="/healthz"):
    for _ in range(600):
        try:
            urllib.request.urlopen(base + path, timeout=1)
            return
        except urllib.error.HTTPError:
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


def wrk(base, mode, scenario, tokens, seconds=None):
    env = dict(os.environ, BENCH_TOKENS=tokens, BENCH_MODE=mode, BENCH_SCENARIO=scenario, BENCH_NONCE=uuid.uuid4().hex[:8])
    out = subprocess.run(["wrk", "-t2", f"-c{CONNS}", f"-d{seconds or SECONDS}s", "-s", LUA, base], env=env, capture_output=True, text=True)
    line = next((l for l in out.stderr.splitlines() if l.startswith("RESULT ")), None)
    if not line:
        raise SystemExit("wrk failed: " + out.stderr[-500:] + out.stdout[-500:])
    r = json.loads(line[7:])
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    return r


def pgbench(url, scripts):
    """pgbench on the given script files (equal weights); the same result shape as wrk."""
    args = ["pgbench", "-n", "-M", "prepared", "-c", str(CONNS), "-j", "2", "-T", str(SECONDS)]
    for s in scripts:
        args += ["-f", s + "@1"]
    out = subprocess.run(args + [url], capture_output=True, text=True)
    tps = next((l for l in out.stdout.splitlines() if l.startswith("tps = ")), None)
    lat = next((l for l in out.stdout.splitlines() if l.startswith("latency average = ")), None)
    failed = next((l for l in out.stdout.splitlines() if l.startswith("number of failed transactions")), "0")
    if not tps:
        raise SystemExit("pgbench failed: " + out.stderr[-800:] + out.stdout[-800:])
    return {"rps": float(tps.split()[2]), "p50_us": float(lat.split()[3]) * 1000 if lat else 0,
            "non2xx": int(failed.split(":")[1].split()[0]) if ":" in failed else 0, "socket_errors": 0}


def compare(label, runs_a, runs_b, name_a, name_b, out, rounds=None):
    """Interleaved rounds of two configurations; medians and the ratio a/b. The order
    alternates (A B, B A, ...): whichever runs second in a pair measured a few percent faster
    on this machine."""
    ra, rb = [], []
    for i in range(rounds or ROUNDS):
        if i % 2 == 0:
            ra.append(runs_a())
            rb.append(runs_b())
        else:
            rb.append(runs_b())
            ra.append(runs_a())
    ma, mb = statistics.median(r["rps"] for r in ra), statistics.median(r["rps"] for r in rb)
    bad = sum(r["non2xx"] + r["socket_errors"] for r in ra + rb)
    row = {"label": label, name_a: round(ma), name_b: round(mb), "ratio": round(ma / mb, 3),
           "p50_ms": [round(statistics.median(r["p50_us"] for r in ra) / 1000, 2), round(statistics.median(r["p50_us"] for r in rb) / 1000, 2)],
           "errors": bad, "rounds": [[round(r["rps"]) for r in ra], [round(r["rps"]) for r in rb]]}
    print(json.dumps(row), flush=True)
    out.append(row)


class Deployment:
    """A catalog and one cell (SQLite files, or two throwaway PostgreSQL databases) and the
    tenantd nodes serving them."""

    def __init__(self, kind, password_hashing="insecure-fast-for-tests"):
        self.kind = kind
        self.work = tempfile.mkdtemp(prefix="tenantd-bench-")
        self.admin = os.environ.get("TENANTD_TEST_PG")
        self.dbs, self.procs, self.by_base = [], [], {}
        with open(os.path.join(self.work, "plans.yaml"), "w") as f:
            f.write(PLANS)
        self.cfg = os.path.join(self.work, "tenantd.toml")
        with open(self.cfg, "w") as f:
            f.write(f'plans_file = "{self.work}/plans.yaml"\naccess_ttl_secs = 7200\nauth_rate_per_ip = 100000000\n'
                    f'auth_rate_per_account = 100000000\npassword_hashing = "{password_hashing}"\n'
                    f'public_url = "https://tenantd.bench"\n')
            if kind == "postgres":
                host = self.admin.split("@", 1)[1].split("/", 1)[0]
                for sql in ["DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tenantd_bench_owner') THEN CREATE ROLE tenantd_bench_owner LOGIN; END IF; END $$",
                            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tenantd_bench_app') THEN CREATE ROLE tenantd_bench_app LOGIN; END IF; END $$",
                            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tenantd_app') THEN CREATE ROLE tenantd_app NOLOGIN; END IF; END $$",
                            "GRANT tenantd_app TO tenantd_bench_owner WITH ADMIN OPTION"]:
                    subprocess.run(["psql", self.admin, "-q", "-c", sql], capture_output=True)
                tag = uuid.uuid4().hex[:10]
                self.dbs = [f"tdb_{tag}_cat", f"tdb_{tag}_cell"]
                for db in self.dbs:
                    subprocess.run(["psql", self.admin, "-q", "-c", f"CREATE DATABASE {db} OWNER tenantd_bench_owner"], check=True, capture_output=True)
                u = lambda user, db: f"postgres://{user}@{host}/{db}"
                f.write(f'[catalog]\nurl = "{u("tenantd_bench_app", self.dbs[0])}"\nmigrate_url = "{u("tenantd_bench_owner", self.dbs[0])}"\n'
                        f'[[cells]]\nname = "bench"\nurl = "{u("tenantd_bench_app", self.dbs[1])}"\nmigrate_url = "{u("tenantd_bench_owner", self.dbs[1])}"\n')
                self.cell_url = u("tenantd_bench_app", self.dbs[1])
                self.super_url = lambda i: self.admin.rsplit("/", 1)[0] + "/" + self.dbs[i]
            else:
                self.cell_url = "sqlite://" + os.path.join(self.work, "data", "cells", "local.db")

    def node(self, binary=None, **env_extra):
        """Starts `tenantd serve` (or `binary serve`) on this deployment; returns its base URL."""
        p = port()
        env = dict(os.environ, TENANTD_LISTEN=f"127.0.0.1:{p}", TENANTD_DATA_DIR=os.path.join(self.work, "data"), TENANTD_CONFIG=self.cfg,
                   TENANTD_ADMIN_EMAIL="root@bench.test", TENANTD_ADMIN_PASSWORD="bench-admin-password", TENANTD_LOG="error", **env_extra)
        for k in ("TENANTD_TEST_PG", "TENANTD_TEST_BACKEND"):
            env.pop(k, None)
        proc = subprocess.Popen([binary or TENANTD, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        base = f"http://127.0.0.1:{p}"
        self.by_base[base] = proc
        wait(base)
        return base

    def stop(self, base):
        """Stops a node (PostgreSQL allows 100 connections; idle pools hold theirs)."""
        proc = self.by_base.pop(base)
        proc.terminate()
        proc.wait(10)
        self.procs.remove(proc)

    def bare(self):
        p = port()
        self.procs.append(subprocess.Popen([BARE, self.cell_url, f"127.0.0.1:{p}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        base = f"http://127.0.0.1:{p}"
        wait(base, "/v1/agents")
        return base

    def token_file(self, name, lines):
        path = os.path.join(self.work, name + ".txt")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def fill(self, n):
        """Bulk-loads n filler tenants, each with a user, a membership, a session, its `users`
        counter, and two agents (with their counter) in the cell."""
        rows = {"tenants": [], "users": [], "memberships": [], "sessions": [], "quota_counters": []}
        cell = {"resources": [], "quota_counters": []}
        cell_name = "bench" if self.kind == "postgres" else "local"
        for i in range(n):
            t, u, s = (f"00000000-0000-7000-8000-{i:012x}", f"00000001-0000-7000-8000-{i:012x}", f"00000002-0000-7000-8000-{i:012x}")
            rows["tenants"].append([t, f"filler-{i}", "Filler", "client", "free", "active", None, None, cell_name, "{}", "{}", NOW, NOW, None, None])
            rows["users"].append([u, f"filler-{i}@bench.test", "Filler", None, t, NOW])
            rows["memberships"].append([t, u, "owner", NOW])
            rows["sessions"].append([s, u, t, NOW, None, None, None])
            rows["quota_counters"].append([t, "users", 1])
            for j in range(2):
                cell["resources"].append([f"00000003-{j:04x}-7000-8000-{i:012x}", t, "agents", f"agent-{j}", '{"model":"small"}', "private", 1, NOW, NOW, "user:" + u])
            cell["quota_counters"].append([t, "agents", 2])
        cols = {"tenants": "id, slug, name, type, plan, status, status_reason, region, cell, settings, branding, created_at, updated_at, deleted_at, purge_after",
                "users": "id, email, name, password_hash, last_tenant_id, created_at",
                "memberships": "tenant_id, user_id, role, created_at",
                "sessions": "id, user_id, tenant_id, created_at, revoked_at, refresh_revoked_at, revoked_after_gen",
                "quota_counters": "tenant_id, quota, used",
                "resources": "id, tenant_id, kind, name, spec, sharing_mode, version, created_at, updated_at, created_by"}
        for db_index, tables in ((0, rows), (1, cell)):
            if self.kind == "postgres":
                for table, data in tables.items():
                    path = os.path.join(self.work, f"{table}-{db_index}.csv")
                    with open(path, "w", newline="") as f:
                        csv.writer(f).writerows([["" if v is None else v for v in r] for r in data])
                    subprocess.run(["psql", self.super_url(db_index), "-q", "-c", f"\\copy {table} ({cols[table]}) FROM '{path}' WITH (FORMAT csv)"], check=True, capture_output=True)
                subprocess.run(["psql", self.super_url(db_index), "-q", "-c", "ANALYZE"], check=True, capture_output=True)
            else:
                path = os.path.join(self.work, "data", "catalog.db") if db_index == 0 else self.cell_url[len("sqlite://"):]
                db = sqlite3.connect(path, timeout=60)
                with db:
                    for table, data in tables.items():
                        db.executemany(f"INSERT INTO {table} ({cols[table]}) VALUES ({', '.join('?' * len(data[0]))})", data)
                db.execute("ANALYZE")
                db.close()

    def close(self):
        for p in self.procs:
            p.terminate()
            p.wait(10)
        for db in self.dbs:
            subprocess.run(["psql", self.admin, "-q", "-c", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"], capture_output=True)


def setup_tenants(base, plan, n, tag):
    lines = []
    for i in range(n):
        up = req(base, "POST", "/v1/auth/signup", {"email": f"b{i}@{tag}-{plan}.test", "password": "bench-password-1", "name": "B",
                                                   "tenant": {"name": "B", "slug": f"{tag}-{plan}-{i}", "plan": plan}})
        token, tid = up["access_token"], up["tenant"]["id"]
        ids = [req(base, "POST", "/v1/agents", {"name": f"seed-{j}", "spec": {"model": "small"}}, token)["id"] for j in range(AGENTS)]
        lines.append(" ".join([token, tid] + ids))
    return lines


def pgbench_scripts(dep, lines):
    """One script per tenant: the bare handler's GET transaction (BEGIN, set_config, the
    statement, COMMIT), with that tenant's id and one of its agents."""
    paths = []
    for n, line in enumerate(lines):
        parts = line.split()
        tid, agent = parts[1], parts[2]
        path = os.path.join(dep.work, f"get-{n}.sql")
        with open(path, "w") as f:
            f.write("BEGIN;\n"
                    f"SELECT set_config('app.tenant_id', '{tid}', true);\n"
                    "SELECT r.id, r.tenant_id, r.kind, r.name, r.spec, r.sharing_mode, r.version, r.created_at, r.updated_at, r.created_by "
                    f"FROM resources r WHERE r.id = '{agent}' AND r.kind = 'agents' AND (r.tenant_id = '{tid}' OR r.sharing_mode = 'global' OR "
                    f"(r.sharing_mode = 'selective' AND EXISTS (SELECT 1 FROM resource_shares s WHERE s.resource_id = r.id AND s.tenant_id = '{tid}')));\n"
                    "COMMIT;\n")
        paths.append(path)
    return paths


def run_backend(kind, out):
    tag = uuid.uuid4().hex[:6]
    deps = []
    try:
        # tenantd, a cold node and the bare handler on one deployment.
        main = Deployment(kind)
        deps.append(main)
        base = main.node()
        limited = main.token_file("limited", setup_tenants(base, "bench", TENANTS // 2, tag))
        unlimited = main.token_file("unlimited", setup_tenants(base, "nolimit", TENANTS // 2, tag))
        bare = main.bare()
        for scenario in ("get", "list", "create"):
            compare(f"{kind}: {scenario}: tenantd vs bare handler",
                    lambda: wrk(base, "tenantd", scenario, limited), lambda: wrk(bare, "bare", scenario, limited),
                    "tenantd_rps", "bare_rps", out)
        if BASELINE:
            old = main.node(binary=BASELINE)
            for scenario in ("get", "list", "create"):
                compare(f"{kind}: {scenario}: this build vs the baseline build",
                        lambda: wrk(base, "tenantd", scenario, limited), lambda: wrk(old, "tenantd", scenario, limited),
                        "this_rps", "baseline_rps", out)
            main.stop(old)
        if ONLY_BARE:
            main.close()
            deps.remove(main)
            return
        compare(f"{kind}: get: rate limiter on vs off (tenantd)",
                lambda: wrk(base, "tenantd", "get", limited), lambda: wrk(base, "tenantd", "get", unlimited),
                "limiter_on_rps", "limiter_off_rps", out)
        cold = main.node(TENANTD_AUTH_CACHE_TTL_MS="0")
        for scenario in ("get", "list"):
            compare(f"{kind}: {scenario}: cold vs warm credentials (tenantd)",
                    lambda: wrk(cold, "tenantd", scenario, limited), lambda: wrk(base, "tenantd", scenario, limited),
                    "cold_rps", "warm_rps", out)
        main.stop(cold)
        if kind == "postgres":
            tables = ["resources", "resource_shares", "quota_counters", "audit_events", "audit_heads", "files"]

            def rls(on):
                for t in tables:
                    subprocess.run(["psql", main.super_url(1), "-q", "-c", f"ALTER TABLE {t} {'ENABLE' if on else 'DISABLE'} ROW LEVEL SECURITY"], check=True, capture_output=True)

            def with_rls(on, scenario):
                rls(on)
                return wrk(base, "tenantd", scenario, limited)

            for scenario in ("get", "list"):
                compare(f"postgres: {scenario}: RLS on vs off (tenantd)", lambda: with_rls(True, scenario), lambda: with_rls(False, scenario),
                        "rls_on_rps", "rls_off_rps", out, rounds=max(ROUNDS, 5))
            rls(True)
            scripts = pgbench_scripts(main, open(limited).read().split("\n")[:-1])
            compare("postgres: get: bare handler vs pgbench (the same transaction)",
                    lambda: wrk(bare, "bare", "get", limited), lambda: pgbench(main.cell_url, scripts),
                    "bare_rps", "pgbench_tps", out)
        main.close()
        deps.remove(main)

        # 10 tenants vs 100,000: two deployments side by side, the same 10 tenants' traffic.
        small, big = Deployment(kind), Deployment(kind)
        deps += [small, big]
        s_base, b_base = small.node(), big.node()
        s_tok = small.token_file("ten", setup_tenants(s_base, "bench", 10, tag + "s"))
        t0 = time.time()
        big.fill(FILLER)
        print(f"{kind}: loaded {FILLER} filler tenants in {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
        b_tok = big.token_file("ten", setup_tenants(b_base, "bench", 10, tag + "b"))
        for scenario in ("get", "list", "create"):
            compare(f"{kind}: {scenario}: {FILLER + 10:,} vs 10 tenants in the catalog",
                    lambda: wrk(b_base, "tenantd", scenario, b_tok), lambda: wrk(s_base, "tenantd", scenario, s_tok),
                    "big_rps", "small_rps", out)
        small.stop(s_base)
        big.stop(b_base)
        s_cold, b_cold = small.node(TENANTD_AUTH_CACHE_TTL_MS="0"), big.node(TENANTD_AUTH_CACHE_TTL_MS="0")
        compare(f"{kind}: get, cold credentials: {FILLER + 10:,} vs 10 tenants in the catalog",
                lambda: wrk(b_cold, "tenantd", "get", b_tok), lambda: wrk(s_cold, "tenantd", "get", s_tok),
                "big_rps", "small_rps", out)
        small.close()
        big.close()
        deps.clear()

        # Login alone, argon2id at OWASP parameters.
        owasp = Deployment(kind, password_hashing="owasp")
        deps.append(owasp)
        o_base = owasp.node()
        req(o_base, "POST", "/v1/auth/signup", {"email": "login@bench.test", "password": "bench-password-1", "name": "L",
                                                "tenant": {"name": "L", "slug": f"{tag}-login", "plan": "nolimit"}})
        r = wrk(o_base, "login", "login", owasp.token_file("login", ["login@bench.test bench-password-1"]))
        row = {"label": f"{kind}: login (argon2id, OWASP parameters) alone", "rps": round(r["rps"], 1),
               "p50_ms": round(r["p50_us"] / 1000, 1), "errors": r["non2xx"] + r["socket_errors"]}
        print(json.dumps(row), flush=True)
        out.append(row)
    finally:
        for d in deps:
            d.close()


class Receiver:
    """A webhook receiver on loopback: records each delivery's arrival and the event's time."""

    def __init__(self):
        import http.server
        import threading
        self.arrivals = []
        lock = threading.Lock()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real receiver would

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                now = time.time()
                try:
                    ev = json.loads(body)
                except ValueError:
                    ev = {}
                with lock:
                    outer.arrivals.append((now, ev.get("occurred_at"), ev.get("id")))
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def parse_time(t):
    from datetime import datetime
    return datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=__import__("datetime").timezone.utc).timestamp()


def cpu_seconds(pid):
    """User + system CPU a process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_events(kind, out):
    """The cost of events on the create path (this build against the build before the event
    log, when BENCH_BASELINE names it); uploads to tenants with a subscribed endpoint vs
    without, with the CPU each side spends; then 100 endpoints on one tenant, latency from the
    event's commit to arrival."""
    tag = uuid.uuid4().hex[:6]
    dep = Deployment(kind)
    try:
        env = {"TENANTD_WEBHOOK_ALLOW_HTTP": "true", "TENANTD_WEBHOOK_ALLOW_PRIVATE": "true"}
        base = dep.node(**env)
        proc = dep.by_base[base]
        rx = Receiver()
        quiet = setup_tenants(base, "bench", TENANTS // 2, tag + "q")
        hooked = setup_tenants(base, "bench", TENANTS // 2, tag + "h")
        q_tok = dep.token_file("quiet", quiet)
        if BASELINE:
            # Events on the create path: the same requests against the build before the event
            # log (its own deployment, same shape), before any endpoint exists here.
            old_dep = Deployment(kind)
            try:
                old = old_dep.node(binary=BASELINE)
                o_tok = old_dep.token_file("old", setup_tenants(old, "bench", TENANTS // 2, tag + "o"))
                for scenario, what in (("upload", "a file.created event"), ("create", "a resource: a quota check, no event")):
                    compare(f"{kind}: {scenario} ({what}): this build vs the build before the event log",
                            lambda: wrk(base, "tenantd", scenario, q_tok), lambda: wrk(old, "tenantd", scenario, o_tok),
                            "with_events_rps", "before_events_rps", out)
            finally:
                old_dep.close()
        for line in hooked:
            token = line.split()[0]
            req(base, "POST", "/v1/webhooks", {"url": rx.url + "/hook", "events": ["*"]}, token)
        h_tok = dep.token_file("hooked", hooked)
        cpu = {"with": [], "without": []}

        def counted(side, tokens):
            t0, b0 = cpu_seconds(proc.pid), sum(os.times()[:2])
            r = wrk(base, "tenantd", "upload", tokens)
            n = max(r["requests"], 1)
            cpu[side].append(((cpu_seconds(proc.pid) - t0) / n * 1000, (sum(os.times()[:2]) - b0) / n * 1000))
            return r

        compare(f"{kind}: upload (a file.created event): with a webhook endpoint vs without",
                lambda: counted("with", h_tok), lambda: counted("without", q_tok),
                "with_endpoint_rps", "without_rps", out)
        row = {"label": f"{kind}: CPU ms per upload (tenantd; the receiver, in this process)",
               "tenantd_with": round(statistics.median(c[0] for c in cpu["with"]), 3),
               "tenantd_without": round(statistics.median(c[0] for c in cpu["without"]), 3),
               "receiver_with": round(statistics.median(c[1] for c in cpu["with"]), 3)}
        print(json.dumps(row), flush=True)
        out.append(row)
        # 100 endpoints on one tenant; 50 uploads one after another; every delivery timed.
        token = quiet[0].split()[0]
        for i in range(100):
            req(base, "POST", "/v1/webhooks", {"url": f"{rx.url}/e{i}", "events": ["file.created"]}, token)
        # Let the uploads' deliveries drain first, so the timing below is of these alone.
        deadline = time.time() + 120
        while time.time() < deadline:
            m = urllib.request.urlopen(base + "/metrics").read().decode()
            backlog = next((l.split()[1] for l in m.splitlines() if l.startswith("tenantd_webhook_backlog ")), "0")
            if backlog == "0":
                break
            time.sleep(0.5)
        rx.arrivals.clear()
        for i in range(50):
            r = urllib.request.Request(base + f"/v1/files?name=lat{i}.txt", data=b"x" * 40, method="POST",
                                       headers={"Authorization": "Bearer " + token, "Content-Type": "application/octet-stream"})
            urllib.request.urlopen(r).read()
        deadline = time.time() + 120
        while len(rx.arrivals) < 5000 and time.time() < deadline:
            time.sleep(0.2)
        lat = sorted((a - parse_time(t)) * 1000 for a, t, _ in rx.arrivals if t)
        span = max(a for a, _, _ in rx.arrivals) - min(parse_time(t) for _, t, _ in rx.arrivals if t)
        row = {"label": f"{kind}: 100 endpoints, 50 events: commit to receiver",
               "deliveries": len(rx.arrivals), "unique": len({(i, a) for a, _, i in rx.arrivals}),
               "per_second": round(len(rx.arrivals) / span, 1),
               "p50_ms": round(lat[len(lat) // 2], 1), "p99_ms": round(lat[int(len(lat) * 0.99) - 1], 1)}
        print(json.dumps(row), flush=True)
        out.append(row)
    finally:
        dep.close()


def main():
    for b in (TENANTD, BARE):
        if not os.path.exists(b):
            raise SystemExit(f"missing {b}: build first (see the docstring)")
    out = []
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    if ONLY_EVENTS:
        run_events("sqlite", out)
        if os.environ.get("TENANTD_TEST_PG"):
            run_events("postgres", out)
        with open(os.path.join(ROOT, "bench", "last-run-events.json"), "w") as f:
            json.dump({"started": started, "seconds": SECONDS, "connections": CONNS, "rounds": ROUNDS,
                       "results": out}, f, indent=1)
        return
    run_backend("sqlite", out)
    if os.environ.get("TENANTD_TEST_PG"):
        run_backend("postgres", out)
    else:
        print("no TENANTD_TEST_PG: PostgreSQL figures skipped", file=sys.stderr)
    name = "last-run-bare.json" if ONLY_BARE else "last-run.json"
    with open(os.path.join(ROOT, "bench", name), "w") as f:
        json.dump({"started": started, "seconds": SECONDS, "connections": CONNS, "rounds": ROUNDS, "tenants": TENANTS,
                   "filler_tenants": FILLER, "results": out}, f, indent=1)


if __name__ == "__main__":
    main()
