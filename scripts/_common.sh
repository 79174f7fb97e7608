# Shared by scripts/*.sh: install pinned dependencies (Deno itself comes from npm) and find the cluster.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DENO="$ROOT/node_modules/.bin/deno"
export KF_CLUSTER_DIR="${KF_CLUSTER_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kf/cluster}"

# npm ci only when node_modules is missing or older than the lockfile: a warm run starts in seconds
install_deps() {
  if [ ! -x "$DENO" ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "[kf] installing dependencies (npm ci; Deno is pinned in package.json)" >&2
    npm ci --no-audit --no-fund >&2 || { echo "[kf] npm ci failed" >&2; exit 1; }
  fi
}

# Tools the e2e tests drive (python requests, ApacheBench, curl as real clients; iptables); each installed only
# when missing.
ensure_test_packages() {
  local missing=()
  python3 -c 'import requests' 2>/dev/null || missing+=(python3-requests)
  command -v ab >/dev/null 2>&1 || missing+=(apache2-utils)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  # a dead path to the API server is made by dropping kf's packets (tests/e2e/dead_path_test.ts)
  command -v iptables >/dev/null 2>&1 || [ -x /usr/sbin/iptables ] || missing+=(iptables)
  [ "${#missing[@]}" -eq 0 ] && return 0
  echo "[kf] installing test packages: ${missing[*]}" >&2
  if command -v apt-get >/dev/null 2>&1; then
    apt-get install -y "${missing[@]}" >&2 || { apt-get update >&2 && apt-get install -y "${missing[@]}" >&2; } ||
      echo "[kf] could not install ${missing[*]}; the HTTP e2e tests will fail" >&2
  else
    echo "[kf] please install: ${missing[*]} (needed by tests/e2e/http_test.ts)" >&2
  fi
}

cluster_running() {
  local f="$KF_CLUSTER_DIR/pids/kube-apiserver.pid"
  [ -f "$f" ] && [ -d "/proc/$(cat "$f")" ]
}
