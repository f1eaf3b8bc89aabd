#!/usr/bin/env bash
# Builds Kubo (the IPFS node) from the Go module proxy: `build-kubo.sh VERSION OUTPUT`.
# `go install github.com/ipfs/kubo/cmd/ipfs@VERSION` refuses modules whose go.mod has replace
# directives, and v0.43.1 replaces go-libp2p with a fork the proxy does not serve. Its own TODO says
# to drop that replace once a go-libp2p release requires quic-go >= v0.62.0 and webtransport-go >=
# v0.13.0: go-libp2p v0.50.0 is that release, so we build the module with it instead of the fork.
set -euo pipefail
version=$1 out=$2
LIBP2P=v0.50.0
work=$(mktemp -d)
trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
dir=$(go mod download -json "github.com/ipfs/kubo@$version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
cp -r "$dir" "$work/kubo"
chmod -R u+w "$work/kubo"
cd "$work/kubo"
go mod edit -dropreplace=github.com/libp2p/go-libp2p
go get "github.com/libp2p/go-libp2p@$LIBP2P" >/dev/null 2>&1 || go get "github.com/libp2p/go-libp2p@$LIBP2P"
mkdir -p "$(dirname "$out")"
CGO_ENABLED=0 go build -trimpath -o "$out" ./cmd/ipfs
"$out" version
