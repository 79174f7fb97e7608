/**
 * The V8 flags kf runs with wherever it starts itself: bin/kf (which states the same flag in sh, see there
 * why: a 1 MiB young generation), `deno task kf`, compiled binaries, `--detach` children and the bench.
 */
export const KF_V8_FLAGS = "--v8-flags=--max-semi-space-size=1";
