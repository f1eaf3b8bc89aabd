#!/usr/bin/env bash
# Installs what colearn-chain needs into the project's own folders, from package registries only.
#   tools/setup.sh demo   what `make demo` needs:
#       .venv/          Python: the package (editable) with its `experiments` extra
#       node_modules/   anvil (and ganache, solcjs: package-lock.json pins them)
#   tools/setup.sh test   (the default; `make setup`, `make test`) all of the above, plus:
#       .venv/          the `dev` extra: eth-brownie 1.22.2, pytest, hypothesis, ruff, mypy, and the `keras`
#                       extra (Keras 3, JAX on the CPU; `KERAS_BACKEND` picks another installed backend)
#       .tools/bin/ipfs Kubo, built from the Go module proxy (no binary downloads)
#       .tools/bin/geth geth, the second chain client (`--chain geth`), built from the Go module proxy
#       ~/.solcx        a `solc` entry for py-solc-x/brownie, served by tools/solc.js
#       chromium        Debian's chromium and chromium-driver, for the explorer's browser tests (as root)
# Idempotent: each step runs only when its inputs changed, so a second run takes a second.
# Each step that runs prints what it does and how long it took.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
target=${1:-test}
case $target in demo | test) ;; *) echo "usage: $0 [demo|test]" >&2; exit 2 ;; esac
stamp=.tools/stamps
mkdir -p "$stamp" .tools/bin
PYTHON=${PYTHON:-python3}
KUBO_VERSION=v0.43.1
GETH_VERSION=v1.17.10
SOLC_VERSION=0.8.28
started=$EPOCHREALTIME

fingerprint() { cat "$@" 2>/dev/null | sha256sum | cut -d' ' -f1; }
stale() {  # stale NAME FILES...: true unless NAME last succeeded with these exact files
  local name=$1; shift
  [ "$(cat "$stamp/$name" 2>/dev/null)" != "$(fingerprint "$@")" ]
}
mark() { local name=$1; shift; fingerprint "$@" > "$stamp/$name"; }
seconds_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f s", b - a }'; }
step() {  # step LABEL COMMAND...: run COMMAND, saying what it does and how long it took
  local label=$1 start=$EPOCHREALTIME; shift
  echo "setup: $label ..."
  "$@"
  echo "setup: $label ... $(seconds_since "$start")"
}

python_env() {  # python_env EXTRA: the package, editable, with EXTRA into .venv
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -e ".[$1]"
}

# `dev` includes `experiments`, so a test set-up also serves the demo.
extra=$([ "$target" = test ] && echo dev || echo experiments)
if [ ! -x .venv/bin/python ] || stale "python-$extra" pyproject.toml; then
  step "Python environment (.venv, extra [$extra])" python_env "$extra"
  mark "python-$extra" pyproject.toml
  [ "$extra" = dev ] && mark python-experiments pyproject.toml
fi

if [ ! -x node_modules/.bin/anvil ] || stale node package.json package-lock.json; then
  step "node tools (node_modules: anvil, ganache, solcjs)" npm ci --no-audit --no-fund --loglevel=error
  mark node package.json package-lock.json
fi

if [ "$target" = test ]; then
  # The demo uses Anvil and the embedded weight store; Kubo serves the tests and `--ipfs` runs.
  if ! .tools/bin/ipfs version 2>/dev/null | grep -q "${KUBO_VERSION#v}"; then
    step "Kubo $KUBO_VERSION from the Go module proxy (a few minutes, once)" \
      bash tools/build-kubo.sh "$KUBO_VERSION" "$root/.tools/bin/ipfs"
  fi
  if ! .tools/bin/geth version 2>/dev/null | grep -q "^Version: ${GETH_VERSION#v}-"; then
    step "geth $GETH_VERSION from the Go module proxy (about 7 minutes, once)" \
      bash tools/build-geth.sh "$GETH_VERSION" "$root/.tools/bin/geth"
  fi

  # The explorer's browser tests drive Debian's Chromium through its chromedriver (no browser download).
  if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      install_chromium() {
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
      }
      step "Debian's chromium and chromium-driver (browser tests)" install_chromium
    else
      echo "setup: chromium and chromedriver are missing; install Debian's chromium and chromium-driver" \
           "(as root: apt-get install chromium chromium-driver) for the browser tests" >&2
    fi
  fi

  # py-solc-x looks for solc-v<version> in its install folder; point it at our solcjs wrapper.
  solcx_dir=${SOLCX_BINARY_PATH:-$HOME/.solcx}
  entry="$solcx_dir/solc-v$SOLC_VERSION"
  # The entry is per user, shared by every checkout: it prefers the checkout it is called from (brownie and
  # the tests run in the project's folder) and falls back to the one that wrote it, so deleting one clone
  # breaks no other.
  wanted=$(cat <<ENTRY
#!/bin/sh
# colearn-chain's solcjs $SOLC_VERSION for py-solc-x (written by tools/setup.sh)
for root in "\$PWD" "$root"; do
  if [ -f "\$root/tools/solc.js" ] && [ -d "\$root/node_modules/solc" ]; then exec node "\$root/tools/solc.js" "\$@"; fi
done
echo "solc: no colearn-chain checkout with node tools here or at $root; run make setup in one" >&2
exit 1
ENTRY
)
  if [ "$(cat "$entry" 2>/dev/null)" != "$wanted" ]; then
    echo "setup: registering solcjs $SOLC_VERSION for py-solc-x at $entry"
    mkdir -p "$solcx_dir"
    # Written aside and renamed: another checkout's set-up or compile may be reading it right now.
    printf '%s\n' "$wanted" > "$entry.$$"
    chmod +x "$entry.$$"
    mv -f "$entry.$$" "$entry"
  fi
fi
echo "setup: ready for make $target ($(seconds_since "$started"))"
