#!/usr/bin/env bash
# Environment for the generated clients' toolchains, all inside the checkout
# (ignored paths) so nothing is installed elsewhere and reruns are warm:
#   Go:     GOMODCACHE, GOCACHE, GOBIN under .cache/go; -modcacherw so the
#           cache can be deleted with `rm -rf .cache/go`.
#   Python: the venv at clients/python/.venv.
# Source it (`. scripts/clients-env.sh`) or run a command under it
# (`bash scripts/clients-env.sh go test ./...`).

JOBS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export JOBS_ROOT
export GOMODCACHE="$JOBS_ROOT/.cache/go/mod"
export GOCACHE="$JOBS_ROOT/.cache/go/build"
export GOBIN="$JOBS_ROOT/.cache/go/bin"
export GOFLAGS="-modcacherw -buildvcs=false"
# Never download a Go toolchain: use the installed go or fail clearly.
export GOTOOLCHAIN=local
export JOBS_PYTHON_VENV="$JOBS_ROOT/clients/python/.venv"
export PIP_CACHE_DIR="$JOBS_ROOT/.cache/pip"

# Pins: Python toolchain in clients/python/requirements.txt; protoc-gen-go and
# protoc-gen-go-grpc in clients/go/tools/go.mod (+ go.sum); buf in package.json.
# The stamp says which clients/go/tools/go.{mod,sum} the plugins in GOBIN came from.
export JOBS_GO_TOOLS_STAMP="$GOBIN/.installed-from"
jobs_go_tools_want() { cat "$JOBS_ROOT/clients/go/tools/go.mod" "$JOBS_ROOT/clients/go/tools/go.sum" | sha256sum | cut -d' ' -f1; }
jobs_go_tools_ok() {
  [[ -x "$GOBIN/protoc-gen-go" && -x "$GOBIN/protoc-gen-go-grpc" && -f "$JOBS_GO_TOOLS_STAMP" &&
    "$(cat "$JOBS_GO_TOOLS_STAMP")" == "$(jobs_go_tools_want)" ]]
}
export PATH="$GOBIN:$JOBS_ROOT/node_modules/.bin:$PATH"

if [[ "${BASH_SOURCE[0]}" == "$0" && $# -gt 0 ]]; then
  exec "$@"
fi
