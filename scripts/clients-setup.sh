#!/usr/bin/env bash
# Installs what the Python and Go clients need, from the registries (PyPI, the
# Go module proxy), into ignored paths inside the checkout: the venv at
# clients/python/.venv, Go's module and build caches and the protoc plugins
# (pinned in clients/go/tools/go.mod) under .cache/go (scripts/clients-env.sh). Idempotent; a second run takes a
# few seconds. `npm test` runs it before jest; `npm run clients:setup` alone.
# Fails loudly when a registry cannot be reached: the client suites are never
# skipped.
set -euo pipefail
source "$(dirname "$0")/clients-env.sh"
cd "$JOBS_ROOT"

fail() {
  printf '\nclients-setup: %s\n' "$*" >&2
  # In the main shell: let the Python job (below) finish rather than orphan it.
  if [[ -n "${python_pid:-}" && "$BASHPID" == "$$" ]]; then wait "$python_pid" 2>/dev/null || true; fi
  exit 1
}

# --- Python: clients/python/.venv from clients/python/requirements.txt -------
setup_python() {
  python="${PYTHON:-}"
  if [[ -z "$python" ]]; then
    for candidate in python3.11 python3; do
      if command -v "$candidate" >/dev/null 2>&1; then python="$candidate"; break; fi
    done
  fi
  [[ -n "$python" ]] || fail "no python3 on PATH (the Python client needs Python >= 3.10; or set PYTHON=/path/to/python3)"
  "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
    fail "$python is $("$python" --version 2>&1); the Python client needs Python >= 3.10 (set PYTHON=...)"

  requirements=clients/python/requirements.txt
  stamp="$JOBS_PYTHON_VENV/.installed"
  want="$(sha256sum "$requirements" | cut -d' ' -f1) $("$python" -c 'import sys; print(sys.version.split()[0])')"
  if [[ -x "$JOBS_PYTHON_VENV/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "python: clients/python/.venv is up to date"
  else
    echo "python: creating clients/python/.venv ($("$python" --version 2>&1)) from $requirements"
    rm -rf "$JOBS_PYTHON_VENV"
    "$python" -m venv "$JOBS_PYTHON_VENV" ||
      fail "'$python -m venv' failed (on Debian: apt-get install python3-venv)"
    # Wheels only: building grpcio from source would take many minutes.
    if ! "$JOBS_PYTHON_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        --only-binary=:all: -r "$requirements"; then
      rm -rf "$JOBS_PYTHON_VENV"
      fail "could not install $requirements from PyPI. Is the registry reachable (pip's index-url, proxy)? The Python client tests need these packages; nothing was skipped."
    fi
    echo "$want" >"$stamp"
  fi
}

# Python (mostly downloads) runs alongside Go (mostly compiling).
python_log="$(mktemp)"
trap 'rm -f "$python_log"' EXIT
setup_python >"$python_log" 2>&1 &
python_pid=$!

# --- Go: protoc plugins in .cache/go/bin, modules of clients/go --------------
go_min="go$(awk '$1 == "go" { print $2 }' clients/go/go.mod)"
command -v go >/dev/null 2>&1 ||
  fail "no go on PATH: the Go client needs Go >= ${go_min#go} (clients/go/go.mod; https://go.dev/dl or your package manager)"
go_version="$(go env GOVERSION)"
[[ "$(printf '%s\n' "$go_min" "$go_version" | sort -V | head -1)" == "$go_min" ]] ||
  fail "go is $go_version; the Go client needs Go >= ${go_min#go} (clients/go/go.mod; GOTOOLCHAIN=local: no toolchain is downloaded)"

if jobs_go_tools_ok; then
  echo "go: protoc-gen-go and protoc-gen-go-grpc are installed (clients/go/tools/go.mod)"
else
  echo "go: installing protoc-gen-go and protoc-gen-go-grpc (clients/go/tools/go.mod) into .cache/go/bin"
  (cd clients/go/tools && go install tool) ||
    fail "could not install the protoc plugins of clients/go/tools/go.mod from the Go module proxy ($(go env GOPROXY)). Is it reachable? The Go client needs them; nothing was skipped."
  jobs_go_tools_want >"$JOBS_GO_TOOLS_STAMP"
fi

echo "go: modules and build cache of clients/go"
(cd clients/go && go mod download) ||
  fail "could not download the modules of clients/go/go.mod from the Go module proxy ($(go env GOPROXY)). Is it reachable? Nothing was skipped."
# Compile once here (cached in .cache/go/build) so `go test` only links.
(cd clients/go && go vet ./...) || fail "clients/go does not build (go vet ./... above)"

python_ok=true
wait "$python_pid" || python_ok=false
cat "$python_log"
$python_ok || exit 1
echo "clients-setup: done"
