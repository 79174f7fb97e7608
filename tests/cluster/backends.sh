#!/usr/bin/env bash
# Real server processes behind the test cluster's database/cache/TLS pods: PostgreSQL, MariaDB, Redis and
# nginx (HTTPS with HTTP/2), each on its own loopback port, plus the clients the tests drive them with.
# The fakelet dials these per port-forward stream, as the kubelet dials a container port.
#
#   backends.sh install   Debian packages (servers and clients), idempotent; needs root for apt-get
#   backends.sh start     initialise (first time) and start every server; idempotent
#   backends.sh stop      stop them (by pid file)
#   backends.sh env       print the export lines for their ports and credentials
#   backends.sh alive     exit 0 when every server is running
#
# One set of servers per machine (every test cluster on it may use them): logs and pid files live in
# $KF_BACKEND_DIR (default ~/.cache/kf/backends). PostgreSQL and MariaDB run as their Debian service users,
# who cannot enter a home directory, so their data lives in /var/tmp/kf-backends-<id of that dir>.
# Credentials: user kf, password kf, database kf.
set -euo pipefail

DIR="${KF_BACKEND_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kf/backends}"
DATA="${KF_BACKEND_DATA_DIR:-/var/tmp/kf-backends-$(echo "$DIR" | sha256sum | cut -c1-10)}"
PG_PORT="${KF_BACKEND_PG_PORT:-15432}"
MARIADB_PORT="${KF_BACKEND_MARIADB_PORT:-13306}"
REDIS_PORT="${KF_BACKEND_REDIS_PORT:-16379}"
HTTPS_PORT="${KF_BACKEND_HTTPS_PORT:-18443}"
# Servers that speak first (MariaDB's greeting) and close idle handshakes count every idle connection a
# forwarder opens ahead of a client; keep the production-like defaults so tests see what users would.
MARIADB_CONNECT_TIMEOUT="${KF_BACKEND_MARIADB_CONNECT_TIMEOUT:-10}"
# Servers already running keep the ports they were started with, whatever this shell asks for.
if [ -f "$DIR/ports.env" ] && [ "${1:-}" != stop ]; then
  # shellcheck disable=SC1091
  . "$DIR/ports.env"
fi

log() { echo "[kf-backends] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

PACKAGES="postgresql postgresql-client mariadb-server mariadb-client redis-server redis-tools nginx openssl curl apache2-utils python3-requests"

pg_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && { echo "$d"; return; }; done
  return 1
}

missing_tools() {
  local t missing=""
  pg_bin >/dev/null || missing="$missing initdb"
  for t in psql pgbench mariadbd mariadb mariadb-install-db redis-server redis-cli redis-benchmark nginx openssl curl ab; do
    command -v "$t" >/dev/null 2>&1 || [ -x "/usr/sbin/$t" ] || missing="$missing $t"
  done
  python3 -c 'import requests' 2>/dev/null || missing="$missing python3-requests"
  echo "$missing"
}

install() {
  local missing; missing="$(missing_tools)"
  [ -z "$missing" ] && return 0
  log "installing Debian packages (missing:$missing)"
  [ "$(id -u)" = 0 ] || die "missing$missing; run as root or: sudo apt-get install -y $PACKAGES"
  # Installing must not start system-wide services or create a default PostgreSQL cluster: the tests run
  # their own instances on their own ports.
  local policy=/usr/sbin/policy-rc.d added_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; added_policy=1
  fi
  mkdir -p /etc/postgresql-common
  [ -f /etc/postgresql-common/createcluster.conf ] || echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf
  export DEBIAN_FRONTEND=noninteractive
  local ok=0
  for attempt in 1 2; do
    if apt-get install -y -q --no-install-recommends $PACKAGES >"$DIR/apt.log" 2>&1; then ok=1; break; fi
    log "apt-get install failed (attempt $attempt), updating package lists"
    apt-get update -q >>"$DIR/apt.log" 2>&1 || true
  done
  [ "$added_policy" = 1 ] && rm -f "$policy"
  [ "$ok" = 1 ] || die "apt-get install failed, see $DIR/apt.log"
  missing="$(missing_tools)"
  [ -z "$missing" ] || die "still missing after install:$missing"
}

alive() { # name -> 0 if its pid file names a live process
  local f="$DIR/pids/$1.pid" pid
  [ -f "$f" ] || return 1
  pid="$(head -1 "$f" 2>/dev/null)"
  [ -n "$pid" ] && [ -d "/proc/$pid" ]
}

port_free() { # port what -> dies when something else listens there already
  if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
    die "127.0.0.1:$1 ($2) is in use by another process; set KF_BACKEND_*_PORT to move it"
  fi
}

wait_port() { # port seconds what
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  die "$3 did not listen on 127.0.0.1:$1 within $2 s (logs: $DIR/logs)"
}

# PostgreSQL refuses to run as root: its data belongs to the Debian package's `postgres` user.
start_pg() {
  alive postgres && return 0
  local bin; bin="$(pg_bin)"
  local data="$DATA/pg"
  if [ ! -f "$data/PG_VERSION" ]; then
    log "initialising PostgreSQL in $data"
    rm -rf "$data"; mkdir -p "$data"; chown postgres:postgres "$data"; chmod 700 "$data"
    echo kf > "$DATA/pgpass.tmp"; chown postgres "$DATA/pgpass.tmp"
    runuser -u postgres -- "$bin/initdb" -D "$data" -U kf --pwfile="$DATA/pgpass.tmp" -A scram-sha-256 \
      -E UTF8 --no-instructions >"$DIR/logs/pg-init.log" 2>&1 || die "initdb failed: $DIR/logs/pg-init.log"
    rm -f "$DATA/pgpass.tmp"
    cat >> "$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$DATA/pg-socket'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
log_destination = 'stderr'
logging_collector = off
CONF
  fi
  mkdir -p "$DATA/pg-socket"; chown postgres:postgres "$DATA/pg-socket"
  port_free "$PG_PORT" PostgreSQL
  log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
  # the log is opened by this (root) shell, so it may live in the cluster dir
  setsid setpriv --reuid=postgres --regid=postgres --init-groups "$bin/postgres" -D "$data" </dev/null >>"$DIR/logs/postgres.log" 2>&1 8>&- 9>&- &
  echo $! > "$DIR/pids/postgres.pid"
  wait_port "$PG_PORT" 30 PostgreSQL
  local i
  for ((i = 0; i < 100; i++)); do
    PGPASSWORD=kf psql -h 127.0.0.1 -p "$PG_PORT" -U kf -d postgres -tAc 'select 1' >/dev/null 2>&1 && break
    sleep 0.1
  done
  if ! PGPASSWORD=kf psql -h 127.0.0.1 -p "$PG_PORT" -U kf -d postgres -tAc "select 1 from pg_database where datname='kf'" | grep -q 1; then
    PGPASSWORD=kf psql -h 127.0.0.1 -p "$PG_PORT" -U kf -d postgres -qc 'create database kf' >/dev/null
    PGPASSWORD=kf pgbench -h 127.0.0.1 -p "$PG_PORT" -U kf -i -q -s 1 kf >"$DIR/logs/pgbench-init.log" 2>&1 ||
      die "pgbench -i failed: $DIR/logs/pgbench-init.log"
  fi
}

start_mariadb() {
  alive mariadb && return 0
  local data="$DATA/mariadb" first=0
  if [ ! -d "$data/mysql" ]; then
    log "initialising MariaDB in $data"
    rm -rf "$data"; mkdir -p "$data"; chown mysql:mysql "$data"
    mariadb-install-db --user=mysql --datadir="$data" --auth-root-authentication-method=socket \
      --skip-test-db >"$DIR/logs/mariadb-init.log" 2>&1 || die "mariadb-install-db failed: $DIR/logs/mariadb-init.log"
    first=1
  fi
  mkdir -p "$DATA/mariadb-run"; chown mysql:mysql "$DATA/mariadb-run"
  port_free "$MARIADB_PORT" MariaDB
  log "starting MariaDB on 127.0.0.1:$MARIADB_PORT"
  setsid mariadbd --no-defaults --user=mysql --datadir="$data" --bind-address=127.0.0.1 --port="$MARIADB_PORT" \
    --socket="$DATA/mariadb-run/mysqld.sock" --pid-file="$DATA/mariadb-run/mysqld.pid" \
    --connect-timeout="$MARIADB_CONNECT_TIMEOUT" --skip-name-resolve --innodb-buffer-pool-size=32M \
    --innodb-flush-log-at-trx-commit=0 --log-warnings=2 \
    </dev/null >>"$DIR/logs/mariadb.log" 2>&1 8>&- 9>&- &
  echo $! > "$DIR/pids/mariadb.pid"
  wait_port "$MARIADB_PORT" 60 MariaDB
  if [ "$first" = 1 ]; then
    mariadb --socket="$DATA/mariadb-run/mysqld.sock" -uroot <<SQL
CREATE DATABASE IF NOT EXISTS kf;
CREATE USER IF NOT EXISTS 'kf'@'%' IDENTIFIED BY 'kf';
GRANT ALL ON kf.* TO 'kf'@'%';
FLUSH PRIVILEGES;
SQL
  fi
}

start_redis() {
  alive redis && return 0
  port_free "$REDIS_PORT" Redis
  log "starting Redis on 127.0.0.1:$REDIS_PORT"
  mkdir -p "$DIR/redis"
  setsid redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --dir "$DIR/redis" \
    --daemonize no --protected-mode no </dev/null >>"$DIR/logs/redis.log" 2>&1 8>&- 9>&- &
  echo $! > "$DIR/pids/redis.pid"
  wait_port "$REDIS_PORT" 20 Redis
}

start_nginx() {
  alive nginx && return 0
  local d="$DIR/nginx"
  mkdir -p "$d/logs" "$d/tmp"
  if [ ! -f "$d/tls.crt" ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
      -keyout "$d/tls.key" -out "$d/tls.crt" -subj "/CN=web-tls" \
      -addext "subjectAltName=DNS:localhost,DNS:web-tls,IP:127.0.0.1" 2>/dev/null
  fi
  cat > "$d/nginx.conf" <<CONF
daemon off;
master_process on;
worker_processes 1;
pid $d/nginx.pid;
error_log $d/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log $d/logs/access.log;
  client_body_temp_path $d/tmp/body;
  proxy_temp_path $d/tmp/proxy;
  fastcgi_temp_path $d/tmp/fastcgi;
  uwsgi_temp_path $d/tmp/uwsgi;
  scgi_temp_path $d/tmp/scgi;
  server {
    listen 127.0.0.1:$HTTPS_PORT ssl http2;
    ssl_certificate $d/tls.crt;
    ssl_certificate_key $d/tls.key;
    default_type text/plain;
    location = / { return 200 "web-tls \$server_protocol\n"; }
    location / { return 404 "not found\n"; }
  }
}
CONF
  port_free "$HTTPS_PORT" nginx
  log "starting nginx (HTTPS, HTTP/2) on 127.0.0.1:$HTTPS_PORT"
  setsid nginx -p "$d" -c "$d/nginx.conf" </dev/null >>"$DIR/logs/nginx.log" 2>&1 8>&- 9>&- &
  echo $! > "$DIR/pids/nginx.pid"
  wait_port "$HTTPS_PORT" 20 nginx
}

stop_one() { # name
  alive "$1" || { rm -f "$DIR/pids/$1.pid"; return 0; }
  local pid; pid="$(head -1 "$DIR/pids/$1.pid")"
  kill -TERM "$pid" 2>/dev/null || true
  local i
  for ((i = 0; i < 100; i++)); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
  [ -d "/proc/$pid" ] && kill -KILL "$pid" 2>/dev/null || true
  rm -f "$DIR/pids/$1.pid"
}

print_env() {
  cat <<ENV
export KF_BACKEND_PG_PORT="$PG_PORT"
export KF_BACKEND_MARIADB_PORT="$MARIADB_PORT"
export KF_BACKEND_REDIS_PORT="$REDIS_PORT"
export KF_BACKEND_HTTPS_PORT="$HTTPS_PORT"
export KF_BACKEND_DIR="$DIR"
export KF_BACKEND_MARIADB_SOCKET="$DATA/mariadb-run/mysqld.sock"
ENV
}

mkdir -p "$DIR"/{pids,logs} "$DATA"; chmod 755 "$DATA"
case "${1:-}" in
  install) install ;;
  start)
    install
    exec 8>"$DIR/.lock"; command -v flock >/dev/null 2>&1 && flock 8
    start_pg; start_mariadb; start_redis; start_nginx
    printf 'PG_PORT=%s\nMARIADB_PORT=%s\nREDIS_PORT=%s\nHTTPS_PORT=%s\n' \
      "$PG_PORT" "$MARIADB_PORT" "$REDIS_PORT" "$HTTPS_PORT" > "$DIR/ports.env"
    ;;
  stop)
    for s in nginx redis mariadb postgres; do stop_one "$s"; done
    rm -f "$DIR/ports.env"
    ;;
  env) print_env ;;
  alive) for s in postgres mariadb redis nginx; do alive "$s" || exit 1; done ;;
  *) sed -n '2,12p' "$0"; exit 2 ;;
esac
