#!/usr/bin/env bash
# Builds geth (go-ethereum's Ethereum client) from the Go module proxy: `build-geth.sh VERSION OUTPUT`.
# Unlike Kubo's, go-ethereum's go.mod has no replace directive, so a plain `go install` of its
# cmd/geth package at VERSION is the whole build (about 7 minutes on 2 cores, once).
set -euo pipefail
version=$1 out=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
GOBIN="$work" GOFLAGS=-mod=mod go install "github.com/ethereum/go-ethereum/cmd/geth@$version"
mkdir -p "$(dirname "$out")"
mv -f "$work/geth" "$out"
"$out" version | sed -n 's/^Version: /geth /p'
