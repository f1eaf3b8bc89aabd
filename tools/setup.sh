#!/usr/bin/env bash
# Installs everything colearn-chain needs into the project's own folders, from package registries only:
#   .venv/          Python: the package (editable) with its pinned dependencies and its dev extra (lint)
#   node_modules/   anvil, ganache, solcjs (package-lock.json pins them)
#   .tools/bin/ipfs Kubo, built from the Go module proxy (no binary downloads)
#   ~/.solcx        a `solc` entry for py-solc-x/brownie, served by tools/solc.js
#   chromium        Debian's chromium and chromium-driver, for the explorer's browser tests (as root)
# Idempotent: each step runs only when its inputs changed, so a second run takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
stamp=.tools/stamps
mkdir -p "$stamp" .tools/bin
PYTHON=${PYTHON:-python3}
KUBO_VERSION=v0.43.1
SOLC_VERSION=0.8.28

fingerprint() { cat "$@" 2>/dev/null | sha256sum | cut -d' ' -f1; }
stale() {  # stale NAME FILES...: true unless NAME last succeeded with these exact files
  local name=$1; shift
  [ "$(cat "$stamp/$name" 2>/dev/null)" != "$(fingerprint "$@")" ]
}
mark() { local name=$1; shift; fingerprint "$@" > "$stamp/$name"; }

if [ ! -x .venv/bin/python ] || stale python pyproject.toml; then
  echo "setup: Python environment (.venv)"
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -e ".[dev]"
  mark python pyproject.toml
fi

if [ ! -x node_modules/.bin/anvil ] || stale node package.json package-lock.json; then
  echo "setup: node tools (node_modules)"
  npm ci --no-audit --no-fund --loglevel=error
  mark node package.json package-lock.json
fi

if ! .tools/bin/ipfs version 2>/dev/null | grep -q "${KUBO_VERSION#v}"; then
  echo "setup: building Kubo $KUBO_VERSION from the Go module proxy (a few minutes, once)"
  bash tools/build-kubo.sh "$KUBO_VERSION" "$root/.tools/bin/ipfs"
fi

# The explorer's browser tests drive Debian's Chromium through its chromedriver (no browser download).
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing Debian's chromium and chromium-driver (browser tests)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "setup: chromium and chromedriver are missing; install Debian's chromium and chromium-driver" \
         "(as root: apt-get install chromium chromium-driver) for the browser tests" >&2
  fi
fi

# py-solc-x looks for solc-v<version> in its install folder; point it at our solcjs wrapper.
solcx_dir=${SOLCX_BINARY_PATH:-$HOME/.solcx}
entry="$solcx_dir/solc-v$SOLC_VERSION"
wanted=$(printf '#!/bin/sh\nexec node "%s/tools/solc.js" "$@"\n' "$root")
if [ "$(cat "$entry" 2>/dev/null)" != "$wanted" ]; then
  echo "setup: registering solcjs $SOLC_VERSION for py-solc-x at $entry"
  mkdir -p "$solcx_dir"
  printf '%s\n' "$wanted" > "$entry"
  chmod +x "$entry"
fi
echo "setup: ready"
