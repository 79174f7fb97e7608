#!/usr/bin/env bash
# Stops kf's local test cluster: every component by the PID in its pid file
# (never by name), SIGTERM first, SIGKILL after a few seconds. Idempotent.
#   --purge     also delete the runtime dir (etcd data, PKI, logs, kubeconfig)
#   --backends  also stop the real servers (tests/cluster/backends.sh), which all clusters share
set -euo pipefail

DIR="${KF_CLUSTER_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kf/cluster}"
PURGE=0
BACKENDS=0
for a in "$@"; do
  case "$a" in
    --purge) PURGE=1 ;;
    --backends) BACKENDS=1 ;;
    -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
    *) echo "unknown argument: $a" >&2; exit 2 ;;
  esac
done
log() { echo "[kf-cluster down] $*" >&2; }

# pid of a component if its pid file names a live process of that binary
live_pid() {
  local f="$DIR/pids/$1.pid" pid exe
  [ -f "$f" ] || return 1
  pid="$(cat "$f")"
  [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
  exe="$(readlink "/proc/$pid/exe" 2>/dev/null)" || return 1
  exe="${exe% (deleted)}"
  [ "${exe##*/}" = "$1" ] || return 1
  echo "$pid"
}

# Reverse start order: the API server outlives its clients, etcd goes last.
for c in fakelet kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
  if pid="$(live_pid "$c")"; then
    log "stopping $c (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
      [ -d "/proc/$pid" ] || break
      # a zombie child of ours counts as gone
      [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ] && break
      sleep 0.1
    done
    if [ -d "/proc/$pid" ] && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]; then
      log "$c did not exit after SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
    fi
  fi
  rm -f "$DIR/pids/$c.pid"
done

# the real servers behind the database pods are shared by every cluster on the machine
if [ "$BACKENDS" = 1 ]; then "$(dirname "$0")/backends.sh" stop || true; fi

if [ "$PURGE" = 1 ] && [ -d "$DIR" ]; then
  log "purging $DIR"
  rm -rf "$DIR"
fi
log "stopped"
