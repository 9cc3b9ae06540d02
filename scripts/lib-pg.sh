# Sourced by scripts/test and .ci/run: starts a throwaway PostgreSQL from the local binaries
# (initdb/pg_ctl refuse to run as root, so as an unprivileged user then) and stops it on exit.
pg_started=""
cleanup() {
  if [ -n "$pg_started" ]; then
    run_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
  fi
}
trap cleanup EXIT

run_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u "$PG_USER" -- "$@"; else "$@"; fi
}

start_throwaway_pg() {
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$PG_BIN" ] && [ -x "$PG_BIN/initdb" ] || return 1
  PG_USER=$(id -un)
  if [ "$(id -u)" = 0 ]; then
    PG_USER=tenantd-pg
    id -u "$PG_USER" >/dev/null 2>&1 || useradd --system --no-create-home "$PG_USER"
  fi
  PG_DIR=$(mktemp -d /tmp/tenantd-pg.XXXXXX)
  chown "$PG_USER" "$PG_DIR" 2>/dev/null || true
  PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  run_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 >/dev/null
  # TLS with a throwaway self-signed certificate, so the TLS test has something to talk to.
  local ssl=""
  if command -v openssl >/dev/null 2>&1 &&
    run_pg openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=127.0.0.1" \
      -keyout "$PG_DIR/data/server.key" -out "$PG_DIR/data/server.crt" >/dev/null 2>&1; then
    run_pg chmod 600 "$PG_DIR/data/server.key"
    ssl="-c ssl=on"
  fi
  run_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w \
    -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off $ssl" start >/dev/null
  pg_started=1
  export TENANTD_TEST_PG="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
  echo "started a throwaway PostgreSQL on 127.0.0.1:$PG_PORT"
}

