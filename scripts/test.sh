#!/usr/bin/env bash
# The one test command: `npm test` (README; .ci/run calls it). Fastest checks
# first, so a broken contract or type fails in seconds. Arguments go to jest.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "typecheck and build"
npx tsc -p tsconfig.json
npm run -s build

step "buf lint (STANDARD + COMMENTS)"
npx buf lint

step "generated code is up to date (npm run generate)"
fresh=$(mktemp -d)
trap 'rm -rf "$fresh"' EXIT
npx buf generate --output "$fresh"
if ! diff -r "$fresh/src/gen" src/gen >/dev/null; then
  diff -r "$fresh/src/gen" src/gen | head -20
  echo "src/gen is stale: run 'npm run generate' and commit the result" >&2
  exit 1
fi

# A client generated yesterday must keep working: the protos in the working
# tree may not break those of main. On main itself, compare with the commit
# before, so a breaking change landed on main fails its own CI run.
if git rev-parse --verify -q main >/dev/null 2>&1; then
  if [ "$(git rev-parse HEAD)" = "$(git rev-parse main)" ] && git rev-parse --verify -q HEAD~1 >/dev/null; then
    against='.git#ref=HEAD~1'
  else
    against='.git#branch=main'
  fi
  step "buf breaking against $against"
  npx buf breaking --against "$against"
fi

step "client toolchains (Python venv, Go tools under .cache) and generated client code is up to date"
bash scripts/clients-setup.sh
bash scripts/generate-clients.sh --check

step "browser for the console's tests (Debian's chromium at /usr/bin/chromium)"
bash scripts/browser-setup.sh

step "tests (jest)"
NODE_OPTIONS="--experimental-vm-modules --disable-warning=ExperimentalWarning ${NODE_OPTIONS:-}" \
  node node_modules/jest/bin/jest.js "$@"
