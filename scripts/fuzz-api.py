#!/usr/bin/env python3
"""Runs schemathesis (an independent OpenAPI fuzzer) with `--checks all` against a running
tenantd: no failure, no schema error, no server error, or the run fails.

Usage: scripts/fuzz-api.py [--binary target/release/tenantd] [--max-examples N] [--postgres]

With --postgres, tenantd runs on a catalog and two cells (regions eu and us) in throwaway
databases of the server TENANTD_TEST_PG names (a superuser URL, used only to create them);
otherwise on the embedded SQLite default.

It starts tenantd on a free port with a throwaway data dir, signs in as the platform admin and
makes an API key for the run — an API key, because a fuzzer that calls /v1/auth/logout or
/v1/auth/password with a session token would end its own session halfway. Then it fuzzes as
that platform admin and, in a second pass, as the owner of an ordinary tenant. The checks
that cannot apply to an operation are switched off in `scripts/schemathesis.toml`, each with
its reason; the server is never loosened to please the fuzzer. `scripts/schemathesis_hooks.py`
replaces the server-error check with one that also lets 503 TENANT_MIGRATING (a write during a
move's freeze) pass; after the run no tenant may be left `migrating`.

Before fuzzing, it verifies the admin's access token with PyJWT — another language's JWT
library — through OpenID discovery, with issuer and audience checked.

schemathesis and PyJWT come from PyPI; `.ci/run` installs them into a virtualenv and runs this
script with its python (SCHEMATHESIS names the executable, default `schemathesis` on PATH).
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOOKS = os.path.join(ROOT, "scripts", "schemathesis_hooks.py")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def call(base, method, path, body=None, token=None):
    req = urllib.request.Request(base + path, method=method)
    if body is not None:
        req.data = json.dumps(body).encode()
        req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", "Bearer " + token)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")


def verify_with_pyjwt(base, token):
    """A token verifies with PyJWT through discovery; another audience or issuer does not."""
    import jwt  # PyJWT, with `cryptography` for EdDSA

    conf = call(base, "GET", "/.well-known/openid-configuration")
    issuer = conf["issuer"]
    key = jwt.PyJWKClient(conf["jwks_uri"]).get_signing_key_from_jwt(token).key
    claims = jwt.decode(token, key, algorithms=["EdDSA"], audience=issuer, issuer=issuer,
                        options={"require": ["exp", "iat", "iss", "aud", "sub"]})
    for wrong in ({"audience": "https://elsewhere.example", "issuer": issuer},
                  {"audience": issuer, "issuer": "tenantd"}):
        try:
            jwt.decode(token, key, algorithms=["EdDSA"], **wrong)
        except jwt.InvalidTokenError:
            continue
        raise AssertionError(f"PyJWT accepted a token with {wrong}")
    print(f"PyJWT verified an access token through discovery (iss {issuer}, sub {claims['sub']})")


def freezes_ended(base, key, wait_s=30):
    """No tenant is left `migrating`: the hooks let 503 TENANT_MIGRATING pass, so a freeze
    that never ended would otherwise go unnoticed. Moves still copying get `wait_s` to end."""
    deadline = time.time() + wait_s
    while True:
        frozen, cursor = [], None
        while True:
            page = call(base, "GET", "/v1/tenants?limit=100" + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else ""),
                        token=key)
            frozen += [t["slug"] for t in page["items"] if t["status"] == "migrating"]
            cursor = page.get("next_cursor")
            if not cursor:
                break
        if not frozen:
            return True
        if time.time() > deadline:
            print(f"tenants left migrating after the run: {frozen}", file=sys.stderr)
            return False
        time.sleep(0.5)


def postgres_deployment(admin, work, env):
    """A catalog and two cells as the README sets them up: an owner role that migrates and a
    plain serving role; returns the databases made."""
    host = admin.split("@", 1)[1].split("/", 1)[0]
    for sql in ("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tenantd_fuzz_owner') THEN CREATE ROLE tenantd_fuzz_owner LOGIN; END IF; END $$",
                "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tenantd_fuzz_app') THEN CREATE ROLE tenantd_fuzz_app LOGIN; END IF; END $$",
                "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tenantd_app') THEN CREATE ROLE tenantd_app NOLOGIN; END IF; END $$"):
        subprocess.run(["psql", admin, "-q", "-c", sql], capture_output=True)
    tag = str(int(time.time() * 1000))[-9:]
    dbs = [f"tdf_{tag}_{n}" for n in ("cat", "eu", "us")]
    for db in dbs:
        subprocess.run(["psql", admin, "-q", "-v", "ON_ERROR_STOP=1", "-c",
                        f"CREATE DATABASE {db} OWNER tenantd_fuzz_owner"], check=True, capture_output=True)
    url = lambda user, db: f"postgres://{user}@{host}/{db}"
    cfg = os.path.join(work, "tenantd.toml")
    with open(cfg, "w") as f:
        f.write(f'[catalog]\nurl = "{url("tenantd_fuzz_app", dbs[0])}"\nmigrate_url = "{url("tenantd_fuzz_owner", dbs[0])}"\n')
        for name, region, db in (("eu-1", "eu", dbs[1]), ("us-1", "us", dbs[2])):
            f.write(f'[[cells]]\nname = "{name}"\nregion = "{region}"\nurl = "{url("tenantd_fuzz_app", db)}"\n'
                    f'migrate_url = "{url("tenantd_fuzz_owner", db)}"\n')
    env["TENANTD_CONFIG"] = cfg
    return dbs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "tenantd"))
    ap.add_argument("--max-examples", default="40")
    ap.add_argument("--seed", default="20261201")
    ap.add_argument("--postgres", action="store_true")
    args = ap.parse_args()
    st = os.environ.get("SCHEMATHESIS", "schemathesis")
    if not shutil.which(st):
        print(f"{st} not found (pip install schemathesis)", file=sys.stderr)
        return 1
    work = tempfile.mkdtemp(prefix="tenantd-fuzz-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(
        os.environ,
        TENANTD_LISTEN=f"127.0.0.1:{port}",
        TENANTD_DATA_DIR=os.path.join(work, "data"),
        TENANTD_ADMIN_EMAIL="root@fuzz.test",
        TENANTD_ADMIN_PASSWORD="fuzz-admin-password",
        TENANTD_PASSWORD_HASHING="insecure-fast-for-tests",
        # The fuzzer signs up and signs in thousands of times from one address.
        TENANTD_AUTH_RATE_PER_IP="1000000",
        TENANTD_AUTH_RATE_PER_ACCOUNT="1000000",
        TENANTD_LOG="error",
        # Leases long-poll up to wait_ms: the fuzzer picks up to 30 s, so cut waits to 200 ms.
        TENANTD_RUN_LEASE_MAX_WAIT_MS="200",
    )
    for k in ("TENANTD_CONFIG", "TENANTD_TEST_PG", "TENANTD_TEST_BACKEND"):
        env.pop(k, None)
    dbs = []
    pg_admin = os.environ.get("TENANTD_TEST_PG")
    if args.postgres:
        if not pg_admin:
            print("--postgres needs TENANTD_TEST_PG (a superuser URL)", file=sys.stderr)
            return 1
        dbs = postgres_deployment(pg_admin, work, env)
    server = subprocess.Popen([args.binary, "serve"], env=env, stdout=subprocess.DEVNULL,
                              stderr=open(os.path.join(work, "server.log"), "w"))
    try:
        deadline = time.time() + 30
        while True:
            try:
                call(base, "GET", "/healthz")
                break
            except Exception:
                if time.time() > deadline or server.poll() is not None:
                    print("tenantd did not start", file=sys.stderr)
                    return 1
                time.sleep(0.1)
        admin = call(base, "POST", "/v1/auth/login",
                     {"email": "root@fuzz.test", "password": "fuzz-admin-password"})["access_token"]
        verify_with_pyjwt(base, admin)
        platform_key = call(base, "POST", "/v1/api-keys", {"name": "fuzz", "role": "admin"}, admin)["key"]
        owner = call(base, "POST", "/v1/auth/signup", {
            "email": "owner@fuzzco.test", "password": "fuzz-owner-password", "name": "Owner",
            "tenant": {"name": "Fuzz Co", "slug": "fuzzco", "plan": "professional"}})["access_token"]
        owner_key = call(base, "POST", "/v1/api-keys", {"name": "fuzz", "role": "owner"}, owner)["key"]
        failed = False
        for who, key in (("platform admin", platform_key), ("tenant owner", owner_key)):
            print(f"== schemathesis --checks all, as the {who}", flush=True)
            cmd = [st, "--config-file", os.path.join(ROOT, "scripts", "schemathesis.toml"), "run",
                   base + "/openapi.json", "--checks", "all",
                   # `--checks all` turns on what the config file turns off: the hooks' check
                   # replaces this one (scripts/schemathesis_hooks.py).
                   "--exclude-checks", "not_a_server_error",
                   "-H", f"Authorization: Bearer {key}",
                   "--max-examples", args.max_examples, "--seed", args.seed,
                   "--workers", "1", "--max-failures", "50"]
            r = subprocess.run(cmd, env=dict(os.environ, SCHEMATHESIS_HOOKS=HOOKS))
            failed |= r.returncode != 0
        if server.poll() is not None:
            print("tenantd exited during the run", file=sys.stderr)
            return 1
        failed |= not freezes_ended(base, platform_key)
        print("fuzz: " + ("FAILED" if failed else "0 failures, 0 schema errors, 0 server errors"))
        return 1 if failed else 0
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(work, ignore_errors=True)
        for db in dbs:
            subprocess.run(["psql", pg_admin, "-q", "-c", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"],
                           capture_output=True)


if __name__ == "__main__":
    sys.exit(main())
