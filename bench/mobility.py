#!/usr/bin/env python3
"""Tenant mobility benchmarks on PostgreSQL, measured side by side in one run (results:
docs/benchmarks.md).

    cargo build --release
    TENANTD_TEST_PG=postgres://postgres@127.0.0.1:5432/postgres python3 bench/mobility.py
    BENCH_SIZES=1000,100000 BENCH_FILLER_TENANTS=99990 ...   # the defaults
    # the figures are written to bench/last-run-mobility.json

- export: `tenantd tenant export` of one tenant (rows/s over the export itself, as its
  `--json` reports it; the whole command, process start-up and opening the databases
  included, is kept as `command_s`) against `COPY (SELECT … WHERE tenant_id = …) TO STDOUT` of the same rows, table by
  table, in one psql session — with 10 and with BENCH_FILLER_TENANTS other tenants in the cell.
- import: `tenantd tenant import` of that archive into a fresh deployment against `COPY FROM`
  of the same rows into copies of the tables (`CREATE TABLE … (LIKE … INCLUDING ALL)`).
- move: `POST /v1/tenants/{id}/move` of a tenant of 1,000 and of 100,000 resources while a
  client writes to it and another tenant's client writes beside it; the freeze as the writing
  client sees it (the longest gap between two acknowledged writes that holds a 503), the
  server's `freeze_ms`, and the neighbour's p99 during the move against its p99 with the same
  two clients writing and no move, in the BENCH_QUIET_S (8) seconds just before. BENCH_MOVE_ROUNDS
  (3) moves per size, there and back; the medians are reported with every round.
"""

import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as base  # noqa: E402

TENANTD = base.TENANTD
SIZES = [int(s) for s in os.environ.get("BENCH_SIZES", "1000,100000").split(",")]
FILLER = int(os.environ.get("BENCH_FILLER_TENANTS", "99990"))
NOW = base.NOW
OUT = os.path.join(base.ROOT, "bench", "last-run-mobility.json")
FILES = 20
MOVE_ROUNDS = int(os.environ.get("BENCH_MOVE_ROUNDS", "3"))
QUIET_S = float(os.environ.get("BENCH_QUIET_S", "8"))
CELL_TABLES = ["resources", "resource_shares", "quota_counters", "audit_events", "audit_heads", "files",
               "upload_reservations", "events", "quota_alerts", "webhook_endpoints", "webhook_deliveries",
               "delivery_queue", "runs", "run_usage", "run_ready", "run_leases"]


class TwoCells(base.Deployment):
    """A PostgreSQL catalog and two cells, `bench` and `bench2`."""

    def __init__(self):
        super().__init__("postgres")
        host = self.admin.split("@", 1)[1].split("/", 1)[0]
        extra = self.dbs[0].rsplit("_", 1)[0] + "_cell2"
        subprocess.run(["psql", self.admin, "-q", "-c", f"CREATE DATABASE {extra} OWNER tenantd_bench_owner"], check=True, capture_output=True)
        self.dbs.append(extra)
        u = lambda user, db: f"postgres://{user}@{host}/{db}"
        with open(self.cfg, "a") as f:
            # bench2 keeps its files in a store of its own, so a move carries the blobs.
            f.write(f'[[cells]]\nname = "bench2"\nurl = "{u("tenantd_bench_app", extra)}"\nmigrate_url = "{u("tenantd_bench_owner", extra)}"\n'
                    f'blob_dir = "{self.blob_dir("bench2")}"\n')

    def blob_dir(self, cell):
        return os.path.join(self.work, "data", "blobs" if cell == "bench" else f"blobs-{cell}")

    def blobs_of(self, cell, tid):
        d = os.path.join(self.blob_dir(cell), "tenants", tid, "files")
        return len([n for n in os.listdir(d) if "#" not in n]) if os.path.isdir(d) else 0

    def cli(self, *args):
        env = dict(os.environ, TENANTD_DATA_DIR=os.path.join(self.work, "data"), TENANTD_CONFIG=self.cfg, TENANTD_LOG="error")
        for k in ("TENANTD_TEST_PG", "TENANTD_TEST_BACKEND"):
            env.pop(k, None)
        t0 = time.perf_counter()
        p = subprocess.run([TENANTD, *args], env=env, capture_output=True, text=True)
        took = time.perf_counter() - t0
        if p.returncode != 0:
            raise RuntimeError(f"tenantd {' '.join(args)}: {p.stderr.strip()}")
        return took, p.stdout


def psql(url, *cmds):
    t0 = time.perf_counter()
    args = ["psql", url, "-q", "-v", "ON_ERROR_STOP=1"]
    for c in cmds:
        args += ["-c", c]
    subprocess.run(args, check=True, capture_output=True)
    return time.perf_counter() - t0


def subject(dep, b, slug, n, files=0):
    """A tenant made through the API, with n memories bulk-loaded into its cell (and its
    counter), 200 items made through the API (so it has an audit chain and events) and `files`
    files of 4 KiB."""
    r = base.req(b, "POST", "/v1/auth/signup", {"email": f"o@{slug}.test", "password": "pw-bench-123456", "name": "O",
                                                 "tenant": {"name": slug, "slug": slug, "plan": "bench"}})
    tid, token = r["tenant"]["id"], r["access_token"]
    for i in range(200):
        base.req(b, "POST", "/v1/tools", {"name": f"api-{i}", "spec": {"i": i}}, token)
    for i in range(files):
        req = base.urllib.request.Request(f"{b}/v1/files?name=f-{i}", data=os.urandom(4096), method="POST",
                                          headers={"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"})
        base.urllib.request.urlopen(req).read()
    path = os.path.join(dep.work, f"{slug}.csv")
    with open(path, "w") as f:
        for i in range(n):
            f.write(f"{uuid.uuid4()},{tid},memories,m-{i},\"{{\"\"i\"\":{i}}}\",private,1,{NOW},{NOW},user:x\n")
    psql(dep.super_url(1), f"\\copy resources (id, tenant_id, kind, name, spec, sharing_mode, version, created_at, updated_at, created_by) FROM '{path}' WITH (FORMAT csv)",
         f"INSERT INTO quota_counters (tenant_id, quota, used) VALUES ('{tid}', 'memories', {n}) ON CONFLICT (tenant_id, quota) DO UPDATE SET used = {n}",
         "ANALYZE")
    return tid, token


def copy_to(dep, tid, path=None):
    """COPY of the tenant's rows of every cell table, in one psql session; the seconds."""
    cmds = []
    for i, t in enumerate(CELL_TABLES):
        col = "owner_tenant_id" if t == "resource_shares" else "tenant_id"
        dest = f"'{path}.{i}'" if path else "'/dev/null'"
        cmds.append(f"\\copy (SELECT * FROM {t} WHERE {col} = '{tid}') TO {dest}")
    return psql(dep.super_url(1), *cmds)


def copy_from(dep, path):
    """COPY FROM of those rows into copies of the tables in a fresh cell; the seconds."""
    setup = [f"CREATE TABLE bench_{t} (LIKE {t} INCLUDING ALL)" for t in CELL_TABLES]
    psql(dep.super_url(1), *setup)
    cmds = [f"\\copy bench_{t} FROM '{path}.{i}'" for i, t in enumerate(CELL_TABLES)]
    return psql(dep.super_url(1), *cmds)


def archive_rows(stdout):
    return json.loads(stdout)["rows"]


def export_import(out):
    results = {}
    for filler in (10, FILLER):
        dep = TwoCells()
        try:
            b = dep.node()
            dep.fill(filler)
            tid, _ = subject(dep, b, "subj", max(SIZES))
            rows, exp, cp, whole_cmd = None, [], [], []
            archive = os.path.join(dep.work, "subj.tar")
            for _ in range(base.ROUNDS):
                took, stdout = dep.cli("tenant", "export", "subj", "-o", archive, "--json")
                exp.append(json.loads(stdout)["seconds"])
                whole_cmd.append(took)
                rows = archive_rows(stdout)
                cp.append(copy_to(dep, tid))
            copy_to(dep, tid, os.path.join(dep.work, "rows"))
            e, c = statistics.median(exp), statistics.median(cp)
            results[f"export_{filler}"] = {"rows": rows, "export_s": e, "command_s": statistics.median(whole_cmd), "copy_to_s": c,
                                           "export_rows_per_s": rows / e, "copy_rows_per_s": rows / c, "ratio": c / e}
            print(f"export, {filler} other tenants: {rows} rows, tenantd {rows / e:.0f} rows/s, COPY TO {rows / c:.0f} rows/s: {c / e:.2f}", flush=True)
            imp, cf, imp_cmd = [], [], []
            for _ in range(base.ROUNDS):
                fresh = TwoCells()
                try:
                    fb = fresh.node()
                    fresh.fill(filler)
                    fresh.stop(fb)
                    took, stdout = fresh.cli("tenant", "import", archive, "--json")
                    imp.append(json.loads(stdout)["seconds"])
                    imp_cmd.append(took)
                    cf.append(copy_from(fresh, os.path.join(dep.work, "rows")))
                finally:
                    fresh.close()
            i, c = statistics.median(imp), statistics.median(cf)
            results[f"import_{filler}"] = {"rows": rows, "import_s": i, "command_s": statistics.median(imp_cmd), "copy_from_s": c,
                                           "import_rows_per_s": rows / i, "copy_rows_per_s": rows / c, "ratio": c / i}
            print(f"import, {filler} other tenants: tenantd {rows / i:.0f} rows/s, COPY FROM {rows / c:.0f} rows/s: {c / i:.2f}", flush=True)
        finally:
            dep.close()
    out["export_import"] = results


class Writer(threading.Thread):
    """Writes items one after another, noting each answer's time and status."""

    def __init__(self, b, token, kind):
        super().__init__(daemon=True)
        self.b, self.token, self.kind = b, token, kind
        self.log, self.stop = [], threading.Event()

    def run(self):
        i = 0
        while not self.stop.is_set():
            t0 = time.perf_counter()
            try:
                base.req(self.b, "POST", f"/v1/{self.kind}", {"name": f"w-{uuid.uuid4().hex[:12]}-{i}", "spec": {}}, self.token)
                status = 201
            except base.urllib.error.HTTPError as e:
                status = e.code
            self.log.append((t0, time.perf_counter(), status))
            i += 1


def freeze_seen(log):
    """The longest span from one acknowledged write to the next that holds a 503."""
    best, last_ok, saw = 0.0, None, False
    for t0, t1, status in log:
        if status == 201:
            if last_ok is not None and saw:
                best = max(best, t1 - last_ok)
            last_ok, saw = t1, False
        elif status == 503:
            saw = True
    return best


def p99(log):
    lat = sorted(t1 - t0 for t0, t1, s in log if s == 201)
    return lat[int(len(lat) * 0.99)] if lat else None


def pair(b, mover_token, nb_token, seconds):
    """The mover's and the neighbour's clients writing side by side for `seconds`, no move."""
    nb, mover = Writer(b, nb_token, "tools"), Writer(b, mover_token, "agents")
    nb.start()
    mover.start()
    time.sleep(seconds)
    for w in (nb, mover):
        w.stop.set()
        w.join()
    return nb.log


def one_move(dep, b, tid, token, nb, to):
    """A move of `tid` to cell `to` while both clients write; what the round measured."""
    quiet = pair(b, token, nb, QUIET_S)
    w, nw = Writer(b, token, "agents"), Writer(b, nb, "tools")
    w.start()
    nw.start()
    time.sleep(1)
    login = base.req(b, "POST", "/v1/auth/login", {"email": "root@bench.test", "password": "bench-admin-password"})
    admin = login["access_token"]
    t0 = time.perf_counter()
    try:
        base.req(b, "POST", f"/v1/tenants/{tid}/move", {"cell": to}, admin)
    except base.urllib.error.HTTPError as e:
        raise SystemExit(f"move: {e.code} {e.read().decode()}")
    while True:
        m = base.req(b, "GET", f"/v1/tenants/{tid}/move", None, admin)
        if m["phase"] in ("done", "aborted"):
            break
        if time.perf_counter() - t0 > 600:
            raise SystemExit(f"the move did not end in 10 minutes: {m}")
        time.sleep(0.05)
    took = time.perf_counter() - t0
    time.sleep(0.5)
    w.stop.set()
    nw.stop.set()
    w.join()
    nw.join()
    statuses = {}
    for _, _, s in w.log:
        statuses[s] = statuses.get(s, 0) + 1
    q, d = p99(quiet), p99(nw.log)
    res = {"to": to, "phase": m["phase"], "move_s": round(took, 2), "freeze_ms_server": m.get("freeze_ms"),
           "freeze_steps_ms": m.get("freeze_steps_ms"), "freeze_ms_client": round(freeze_seen(w.log) * 1000, 1),
           "writes": statuses, "neighbour_p99_quiet_ms": round(q * 1000, 2), "neighbour_p99_during_ms": round(d * 1000, 2),
           "neighbour_p99_ratio": round(d / q, 2), "neighbour_errors": sum(1 for _, _, s in nw.log if s != 201)}
    source = dep.super_url(1 if to == "bench2" else 2)
    left = subprocess.run(["psql", source, "-At", "-c", f"SELECT COUNT(*) FROM resources WHERE tenant_id = '{tid}'"],
                          capture_output=True, text=True).stdout.strip()
    res["rows_left_in_source"] = int(left or 0)
    src_cell = "bench" if to == "bench2" else "bench2"
    res["blobs_left_in_source"], res["blobs_in_target"] = dep.blobs_of(src_cell, tid), dep.blobs_of(to, tid)
    return res


def moves(out):
    """For each size, MOVE_ROUNDS moves of one tenant, there and back (the neighbour is in
    the source cell on the way out and in the target on the way back); each round measures its
    own quiet first, so the ratio compares minutes that lie side by side."""
    results = {}
    for n in SIZES:
        dep = TwoCells()
        try:
            b = dep.node()
            tid, token = subject(dep, b, f"m{n}", n, files=FILES)
            r = base.req(b, "POST", "/v1/auth/signup", {"email": "o@nb.test", "password": "pw-bench-123456", "name": "O",
                                                         "tenant": {"name": "neighbour", "slug": "neighbour", "plan": "bench"}})
            nb = r["access_token"]
            rounds = []
            for i in range(MOVE_ROUNDS):
                res = one_move(dep, b, tid, token, nb, "bench2" if i % 2 == 0 else "bench")
                print(f"move of {n + 200} resources, round {i + 1}: {json.dumps(res)}", flush=True)
                rounds.append(res)
            med = lambda k: statistics.median(r[k] for r in rounds)
            results[str(n)] = {"resources": n + 200, "rounds": rounds,
                               "freeze_ms_client_median": med("freeze_ms_client"),
                               "freeze_ms_client_max": max(r["freeze_ms_client"] for r in rounds),
                               "neighbour_p99_ratio_median": med("neighbour_p99_ratio"),
                               "neighbour_errors": sum(r["neighbour_errors"] for r in rounds),
                               "rows_left_in_source": sum(r["rows_left_in_source"] for r in rounds),
                               "blobs_left_in_source": sum(r["blobs_left_in_source"] for r in rounds)}
            print(f"move of {n + 200} resources: {json.dumps({k: v for k, v in results[str(n)].items() if k != 'rounds'})}", flush=True)
        finally:
            dep.close()
    out["move"] = results


def main():
    if not os.environ.get("TENANTD_TEST_PG"):
        sys.exit("TENANTD_TEST_PG: a PostgreSQL superuser URL")
    out = {"at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=base.ROOT).stdout.strip()}
    parts = os.environ.get("BENCH_PARTS", "move,export").split(",")
    if "move" in parts:
        moves(out)
    if "export" in parts:
        export_import(out)
    with open(OUT, "w") as f:
        json.dump(out, f, indent=2)
    print(f"written {OUT}")


if __name__ == "__main__":
    main()
