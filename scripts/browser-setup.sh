#!/usr/bin/env bash
# Makes sure Debian's Chromium is at /usr/bin/chromium for the console's
# browser tests (test/browser, driven by playwright-core, which downloads no
# browser): installs Debian's `chromium` package with apt-get when it is
# missing. `npm test` runs it before jest; `npm run browser:setup` alone.
# Idempotent: with Chromium in place it only prints its version. Fails loudly
# when Chromium cannot be had: the browser tests are never skipped.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

fail() {
  printf '\nbrowser-setup: %s\n' "$*" >&2
  exit 1
}

version() {
  # Debian's wrapper script may complain on stderr about the machine's memory size; the version is on stdout.
  "$CHROMIUM" --version 2>/dev/null || true
}

if [[ -x "$CHROMIUM" ]]; then
  echo "browser: $(version)"
  exit 0
fi

command -v apt-get >/dev/null 2>&1 ||
  fail "no $CHROMIUM, and no apt-get to install it: install Chromium so that $CHROMIUM runs it (Debian's package is \`chromium\`); the console's browser tests need it, nothing was skipped"
if [[ "$(id -u)" != 0 ]]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
  else
    fail "no $CHROMIUM, and installing Debian's \`chromium\` package needs root: run \`apt-get install chromium\` as root; the console's browser tests need it, nothing was skipped"
  fi
else
  as_root=()
fi

echo "browser: installing Debian's chromium package (apt-get)"
"${as_root[@]}" apt-get update -q ||
  fail "apt-get update failed: is Debian's package registry reachable? The console's browser tests need Chromium; nothing was skipped"
DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -q chromium ||
  fail "apt-get install chromium failed (above). The console's browser tests need it; nothing was skipped"
[[ -x "$CHROMIUM" ]] || fail "the chromium package installed, but $CHROMIUM is not there"
echo "browser: $(version)"
