#!/usr/bin/env python3
"""Runs schemathesis (an independent OpenAPI fuzzer) with `--checks all` against a running
tenantd: no failure, no schema error, no server error, or the run fails.

Usage: scripts/fuzz-api.py [--binary target/release/tenantd] [--max-examples N]

It starts tenantd on a free port with a throwaway data dir, signs in as the platform admin and
makes an API key for the run — an API key, because a fuzzer that calls /v1/auth/logout or
/v1/auth/password with a session token would end its own session halfway. Then it fuzzes as
that platform admin and, in a second pass, as the owner of an ordinary tenant. The checks
that cannot apply to an operation are switched off in `scripts/schemathesis.toml`, each with
its reason; the server is never loosened to please the fuzzer.

schemathesis comes from PyPI; `.ci/run` installs it into a virtualenv (SCHEMATHESIS names
the executable, default `schemathesis` on PATH).
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
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "tenantd"))
    ap.add_argument("--max-examples", default="40")
    ap.add_argument("--seed", default="20261201")
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
    )
    for k in ("TENANTD_CONFIG", "TENANTD_TEST_PG", "TENANTD_TEST_BACKEND"):
        env.pop(k, None)
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
                   "-H", f"Authorization: Bearer {key}",
                   "--max-examples", args.max_examples, "--seed", args.seed,
                   "--workers", "1", "--max-failures", "50"]
            r = subprocess.run(cmd)
            failed |= r.returncode != 0
        if server.poll() is not None:
            print("tenantd exited during the run", file=sys.stderr)
            return 1
        print("fuzz: " + ("FAILED" if failed else "0 failures, 0 schema errors, 0 server errors"))
        return 1 if failed else 0
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
