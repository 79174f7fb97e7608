#!/usr/bin/env bash
# Builds the test cluster's binaries from Go modules (no downloads of prebuilt
# binaries): etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kubectl, kwok and our fakelet.
#
# Output: ${XDG_CACHE_HOME:-$HOME/.cache}/kf/cluster-bin/<key>/ where <key>
# encodes the versions and a hash of this directory's Go sources and build.sh.
# A stamp file marks a finished build; with the stamp present this exits at once.
# The binary directory is printed as the last line on stdout; progress goes to
# stderr. A cold build takes ~10-15 min on 2 cores (see README.md).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
K8S_VERSION=v1.36.3
ETCD_VERSION=v3.6.16
KWOK_VERSION=v0.8.0

log() { echo "[kf-cluster build] $*" >&2; }

if ! command -v go >/dev/null 2>&1; then
  for d in /usr/local/go/bin "$HOME/go/bin" /usr/lib/go/bin; do
    if [ -x "$d/go" ]; then PATH="$d:$PATH"; break; fi
  done
fi
command -v go >/dev/null 2>&1 || { log "go not found in PATH"; exit 1; }

hash_sources() {
  (cd "$HERE" && find . \( -name '*.go' -o -name go.mod -o -name go.sum \) -type f | LC_ALL=C sort |
    xargs sha256sum; sha256sum build.sh) | sha256sum | cut -c1-12
}

KEY="k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_$(go env GOOS)-$(go env GOARCH)_$(hash_sources)"
ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/kf/cluster-bin"
OUT="$ROOT/$KEY"
STAMP="$OUT/.stamp"

if [ -f "$STAMP" ]; then
  echo "$OUT"
  exit 0
fi

mkdir -p "$ROOT"
# One build at a time (e.g. two test runs starting together).
exec 9>"$ROOT/.lock"
if command -v flock >/dev/null 2>&1; then
  log "waiting for build lock $ROOT/.lock"
  flock 9
fi
if [ -f "$STAMP" ]; then
  echo "$OUT"
  exit 0
fi

TMP="$OUT.tmp.$$"
rm -rf "$TMP"
mkdir -p "$TMP"
trap 'rm -rf "$TMP"' EXIT

export CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:-} -mod=readonly -buildvcs=false"
start=$(date +%s)
log "go: $(go version); output: $OUT"
log "building: ~10-15 min on 2 cores with an empty Go cache (~5 GB of module + build cache), ~1-2 min with a warm one"

ldflags="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags="$ldflags -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=36"
  ldflags="$ldflags -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
done

log "[1/3] kube-apiserver, kube-controller-manager, kube-scheduler, kubectl $K8S_VERSION + fakelet"
(cd "$HERE" && go build -trimpath -ldflags "$ldflags" -o "$TMP/" \
  k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler \
  k8s.io/kubernetes/cmd/kubectl \
  ./fakelet)
log "      done after $(( $(date +%s) - start ))s"

log "[2/3] etcd $ETCD_VERSION"
(cd "$HERE/etcd" && go build -trimpath -ldflags "-s -w" -o "$TMP/etcd" go.etcd.io/etcd/server/v3)
log "      done after $(( $(date +%s) - start ))s"

log "[3/3] kwok $KWOK_VERSION"
(cd "$HERE/kwok" && go build -trimpath -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}" \
  -o "$TMP/kwok" sigs.k8s.io/kwok/cmd/kwok)
log "      done after $(( $(date +%s) - start ))s"

"$TMP/kubectl" version --client 2>/dev/null | head -1 >&2 || true
rm -rf "$OUT"
mv "$TMP" "$OUT"
trap - EXIT
printf 'key=%s\nbuilt=%s\nseconds=%s\n' "$KEY" "$(date -u +%FT%TZ)" "$(( $(date +%s) - start ))" > "$STAMP"
log "built in $(( $(date +%s) - start ))s -> $OUT"
echo "$OUT"
