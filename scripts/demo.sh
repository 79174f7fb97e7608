#!/usr/bin/env bash
# The main job on an embedded default: builds (first time ~10-15 min, cached after) and starts a local
# Kubernetes control plane with a demo deployment, then runs `kf forward` on examples/demo.yaml.
source "$(dirname "$0")/_common.sh"
install_deps
kubeconfig="$(bash tests/cluster/up.sh | tail -1)" || { echo "[kf] the local control plane did not start" >&2; exit 1; }
cat >&2 <<MSG

Local cluster is up (kubeconfig: $kubeconfig). kf now forwards the demo Service:
  curl 127.0.0.1:18080/                 # answers with the name of the pod that served it
  while sleep 0.1; do curl -s 127.0.0.1:18080/; echo; done
In another terminal, kill every pod and watch the loop keep going:
  source $KF_CLUSTER_DIR/env && kubectl delete pods --all --force --grace-period=0
  source $KF_CLUSTER_DIR/env && kubectl rollout restart deploy/echo
Real servers behind pods, through kf (they survive the same deletions):
  PGPASSWORD=kf psql -h 127.0.0.1 -p 15433 -U kf kf -c 'select now()'
  redis-cli -p 16380 ping
Other terminal, sessions:  node_modules/.bin/deno task kf ps   |   node_modules/.bin/deno task kf stop --all
Ctrl-C stops kf; 'deno task cluster:down' (or bash tests/cluster/down.sh) stops the cluster.

MSG
export KUBECONFIG="$kubeconfig"
exec "$DENO" run -A main.ts forward -f examples/demo.yaml "$@"
