#!/bin/sh
# Builds dist/ (the bundle the kf launcher runs). npm runs this as `prepare`: after `npm ci` in a checkout,
# before `npm pack`, and on `npm install -g .` — which links the checkout into the global prefix WITHOUT
# installing its dependencies, so a fresh checkout gets them here (the launcher needs the pinned Deno).
set -e
cd "$(dirname "$0")/.."

find_deno() {
  for candidate in node_modules/deno/deno node_modules/@deno/*/deno; do
    if [ -x "$candidate" ]; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

if [ ! -f node_modules/commander/package.json ] || ! find_deno >/dev/null; then
  echo "kf: installing the pinned dependencies into $(pwd)/node_modules (npm ci --omit=dev)" >&2
  # This runs inside `npm install -g`: the child npm must not inherit "global", the global prefix, or
  # --allow-scripts (refused in a project install; it runs with --ignore-scripts anyway).
  env -u npm_config_global -u npm_config_location -u npm_config_prefix -u npm_config_allow_scripts \
    npm ci --omit=dev --ignore-scripts --no-audit --no-fund >&2
fi
deno=$(find_deno)
# deno bundle fetches esbuild (an npm package) once; without it the install still works: the launcher then
# runs the source, slower to start, and says so
if ! DENO_NO_UPDATE_CHECK=1 "$deno" run -A scripts/bundle.ts >&2; then
  echo "kf: warning: could not build dist/ (see above); kf will run from source until: npm run build" >&2
fi
