#!/usr/bin/env python3
"""Runs the published black-box checks (../shared/acceptance/foundation.py) against tenantd on
PostgreSQL and Redis: a catalog and two cells in throwaway databases of the server
TENANTD_TEST_PG names (a superuser URL, used only to create them), rate limits and cache
invalidation through a throwaway redis-server (or TENANTD_TEST_REDIS). Builds nothing: run
`cargo build --release` first."""

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "..", "shared", "acceptance"))
from harness import ADMIN_EMAIL, ADMIN_PASSWORD, Checks, free_port  # noqa: E402
import foundation  # noqa: E402

admin = os.environ.get("TENANTD_TEST_PG")
if not admin:
    print("TENANTD_TEST_PG is not set" + ("" if os.environ.get("CI") == "true" else "; skipped"))
    sys.exit(1 if os.environ.get("CI") == "true" else 0)
host = admin.split("@", 1)[1].split("/", 1)[0]


def psql(sql):
    subprocess.run(["psql", admin, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql], check=True, capture_output=True)


for role, extra in (("tenantd_accept_owner", ""), ("tenantd_accept_app", "")):
    subprocess.run(["psql", admin, "-q", "-c", f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN CREATE ROLE {role} LOGIN {extra}; END IF; END $$"], capture_output=True)
subprocess.run(["psql", admin, "-q", "-c", "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tenantd_app') THEN CREATE ROLE tenantd_app NOLOGIN; END IF; END $$"], capture_output=True)
# The owner role lets the serving role in (GRANT tenantd_app TO ...): it needs ADMIN OPTION.
psql("GRANT tenantd_app TO tenantd_accept_owner WITH ADMIN OPTION")
tag = uuid.uuid4().hex[:12]
dbs = [f"tda_{tag}_{n}" for n in ("cat", "eu", "us")]
for db in dbs:
    psql(f"CREATE DATABASE {db} OWNER tenantd_accept_owner")


def url(user, db):
    return f"postgres://{user}@{host}/{db}"


redis_proc = None
redis_url = os.environ.get("TENANTD_TEST_REDIS")
if not redis_url:
    rport = free_port()
    try:
        redis_proc = subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        redis_url = f"redis://127.0.0.1:{rport}"
    except FileNotFoundError:
        print("no redis-server" + ("" if os.environ.get("CI") == "true" else "; running without Redis"))
        if os.environ.get("CI") == "true":
            sys.exit(1)

work = f"/tmp/tenantd-accept-pg-{tag}"
os.makedirs(work)
cfg = os.path.join(work, "tenantd.toml")
with open(cfg, "w") as f:
    if redis_url:
        f.write(f'redis_url = "{redis_url}"\n')
    f.write(f'[catalog]\nurl = "{url("tenantd_accept_app", dbs[0])}"\nmigrate_url = "{url("tenantd_accept_owner", dbs[0])}"\n')
    for name, region, db in (("eu-1", "eu", dbs[1]), ("us-1", "us", dbs[2])):
        f.write(f'[[cells]]\nname = "{name}"\nregion = "{region}"\nurl = "{url("tenantd_accept_app", db)}"\nmigrate_url = "{url("tenantd_accept_owner", db)}"\n')
port = free_port()
env = dict(os.environ, TENANTD_LISTEN=f"127.0.0.1:{port}", TENANTD_DATA_DIR=os.path.join(work, "data"),
           TENANTD_ADMIN_EMAIL=ADMIN_EMAIL, TENANTD_ADMIN_PASSWORD=ADMIN_PASSWORD, TENANTD_CONFIG=cfg)
env.pop("TENANTD_TEST_PG", None)
env.pop("TENANTD_TEST_BACKEND", None)
log = open(os.path.join(work, "server.log"), "w")
proc = subprocess.Popen([os.path.join(ROOT, "target", "release", "tenantd"), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
base = f"http://127.0.0.1:{port}"
c = Checks()
try:
    for _ in range(150):
        if proc.poll() is not None:
            print("FAIL: server exited: " + open(log.name).read()[-400:])
            sys.exit(1)
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1)
            break
        except Exception:
            time.sleep(0.2)
    if redis_url:
        # Shared limits and cache invalidation both on Redis before the checks start.
        for _ in range(100):
            ready = json.loads(urllib.request.urlopen(base + "/readyz", timeout=2).read())
            if ready.get("rate_limits") == "redis" and ready.get("cache_invalidation") == "redis":
                break
            time.sleep(0.1)
        else:
            print(f"FAIL: tenantd never reached Redis: {ready}")
            sys.exit(1)
    foundation.run_checks(base, c)
    if redis_url:
        ready = json.loads(urllib.request.urlopen(base + "/readyz", timeout=2).read())
        c.check("after the checks, /readyz still reports Redis for limits and invalidation",
                ready.get("rate_limits") == "redis" and ready.get("cache_invalidation") == "redis", str(ready))
finally:
    proc.terminate()
    proc.wait(10)
    if redis_proc:
        redis_proc.kill()
        redis_proc.wait()
    for db in dbs:
        subprocess.run(["psql", admin, "-q", "-c", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"], capture_output=True)
print(f"on PostgreSQL (catalog + cells eu-1, us-1){' and Redis' if redis_url else ''}:", end=" ")
c.finish()
