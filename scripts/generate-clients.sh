#!/usr/bin/env bash
# Regenerates the committed Python and Go client code from proto/:
#   clients/python/jobs/v1/  grpcio-tools' protoc (clients/python/requirements.txt)
#   clients/go/gen/jobs/v1/  buf with local protoc-gen-go and protoc-gen-go-grpc
#                            (buf.gen.go.yaml; versions in clients/go/tools/go.mod)
# `npm run generate:clients`. With --check, generates into a temporary
# directory and fails if the committed code differs (`npm test` runs that).
# Needs the toolchains: scripts/clients-setup.sh (`npm run clients:setup`).
# Only jobs/v1 is generated: google.rpc.ErrorInfo comes from each language's
# stock package (googleapis-common-protos; genproto's errdetails), and the
# health/reflection protos are the server's business.
set -euo pipefail
source "$(dirname "$0")/clients-env.sh"
cd "$JOBS_ROOT"

check=false
if [[ "${1:-}" == "--check" ]]; then check=true; fi

fail() {
  printf 'generate-clients: %s\n' "$*" >&2
  exit 1
}

python="$JOBS_PYTHON_VENV/bin/python"
[[ -x "$python" ]] || fail "no clients/python/.venv: run scripts/clients-setup.sh first"
jobs_go_tools_ok ||
  fail "the protoc plugins of clients/go/tools/go.mod are not in .cache/go/bin: run scripts/clients-setup.sh first"

if $check; then
  out="$(mktemp -d)"
  trap 'rm -rf "$out"' EXIT
else
  out="$JOBS_ROOT"
  rm -rf clients/python/jobs
fi

# Python: messages (+ .pyi type stubs) and gRPC stubs, into package jobs.v1.
mkdir -p "$out/clients/python"
"$python" -m grpc_tools.protoc -I proto \
  --python_out="$out/clients/python" --pyi_out="$out/clients/python" --grpc_python_out="$out/clients/python" \
  proto/jobs/v1/job.proto proto/jobs/v1/job_service.proto

# Go: buf with local plugins (no remote plugins, no BSR).
node_modules/.bin/buf generate --template buf.gen.go.yaml --output "$out"

if $check; then
  stale=false
  for dir in clients/python/jobs clients/go/gen; do
    if ! diff -r -x __pycache__ "$out/$dir" "$dir" >/dev/null 2>&1; then
      diff -r -x __pycache__ "$out/$dir" "$dir" | head -20 || true
      echo "$dir is stale" >&2
      stale=true
    fi
  done
  if $stale; then fail "generated client code is stale: run 'npm run generate:clients' and commit the result"; fi
  echo "generated client code is up to date"
fi
