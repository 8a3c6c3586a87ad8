#!/usr/bin/env bash
# Builds distribution v3's `registry` from the Go module in this folder into a cache outside the
# repository, keyed by the module files, for the registry scan benchmark (its tag list paginates;
# Debian's docker-registry, distribution 2.8, answers every tag at once). Rebuilds only when
# missing. Prints the binary's path on stdout; progress goes to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_root="${SLUICE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice}"
key="$(cat "$here/go.mod" "$here/go.sum" | sha256sum | cut -c1-12)"
bin="$cache_root/registry/$key/registry"
mkdir -p "$(dirname "$bin")"
exec 8>"$cache_root/registry/.build.lock"
flock 8
if [[ ! -x "$bin" ]]; then
	command -v go >/dev/null || { echo "hack/registry: go is not installed" >&2; exit 1; }
	echo "hack/registry: building distribution v3's registry" >&2
	(cd "$here" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" \
		-o "$bin.tmp" github.com/distribution/distribution/v3/cmd/registry) >&2
	mv "$bin.tmp" "$bin"
fi
echo "$bin"
