#!/usr/bin/env bash
# Runs every test on a fresh machine: installs dependencies, builds (cached) and starts the local
# control plane, runs unit and e2e tests, stops the cluster again if this script started it.
# Prints "N passed, M failed" as its last line; exits non-zero when any test fails.
source "$(dirname "$0")/_common.sh"
install_deps
ensure_test_packages

started=0
if ! cluster_running; then started=1; fi
backends_started=0
if ! bash tests/cluster/backends.sh alive 2>/dev/null; then backends_started=1; fi
cleanup() {
  if [ "$started" = 1 ] || [ "${CI:-}" = "true" ]; then bash tests/cluster/down.sh >&2 || true; fi
  if [ "$backends_started" = 1 ]; then bash tests/cluster/backends.sh stop >&2 || true; fi
}
trap cleanup EXIT

if ! bash tests/cluster/up.sh >/dev/null; then
  echo "[kf] the local control plane did not start (logs: $KF_CLUSTER_DIR/logs)" >&2
  echo "0 passed, 1 failed"
  exit 1
fi

log="$(mktemp)"
# unit tests beside the code, then black-box tests of the CLI against the cluster
"$DENO" test -A src/ tests/ "$@" 2>&1 | tee "$log"
code=${PIPESTATUS[0]}
summary="$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E '^(ok|FAILED) \| [0-9]+ passed' | tail -1)"
passed="$(echo "$summary" | sed -E 's/.*\| ([0-9]+) passed.*/\1/')"
failed="$(echo "$summary" | sed -E 's/.*\| ([0-9]+) failed.*/\1/')"
rm -f "$log"
if [ -z "$summary" ]; then
  passed=0
  failed=1
fi
[ "$code" != 0 ] && [ "$failed" = 0 ] && failed=1
echo "${passed} passed, ${failed} failed"
exit "$code"
