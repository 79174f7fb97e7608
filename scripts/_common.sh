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

cluster_running() {
  local f="$KF_CLUSTER_DIR/pids/kube-apiserver.pid"
  [ -f "$f" ] && [ -d "/proc/$(cat "$f")" ]
}
