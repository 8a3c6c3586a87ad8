#!/usr/bin/env bash
# Builds the test cluster's parts (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kwok, and the real node's kubelet, kube-proxy and pause) from the Go
# modules in this folder into a cache outside
# the repository, keyed by the versions and the module files. Rebuilds only
# what is missing. Prints the bin directory on stdout; progress goes to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_root="${SLUICE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice}"

k8s_version="$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "$here/k8s/go.mod")"
key="$(cat "$here"/*/go.mod "$here"/*/go.sum "$here"/etcd/main.go "$here"/pause/main.go | sha256sum | cut -c1-12)"
bin="$cache_root/kube/$k8s_version-$key/bin"
mkdir -p "$bin"
# Concurrent builds (several checkouts, parallel test runs) wait for each other.
exec 8>"$cache_root/kube/.build.lock"
flock 8

log() { echo "hack/kube: $*" >&2; }

if ! command -v go >/dev/null; then
	log "go is not installed; it is needed to build the test control plane"
	exit 1
fi

export GOFLAGS=-mod=mod CGO_ENABLED=0

# build_all <module dir> <ldflags> <package>...: the missing ones in one `go build`, which
# compiles and links them side by side (a binary is named after its package's last element).
build_all() {
	local dir="$1" ldflags="$2"
	shift 2
	local missing=() pkg
	for pkg in "$@"; do
		[[ -x "$bin/${pkg##*/}" ]] || missing+=("$pkg")
	done
	((${#missing[@]})) || return 0
	log "building ${missing[*]##*/} — the first build takes a while"
	local tmp="$bin/.build.tmp"
	rm -rf "$tmp"
	mkdir -p "$tmp"
	if ! (cd "$here/$dir" && go build -trimpath -ldflags "-s -w $ldflags" -o "$tmp/" "${missing[@]}") >&2; then
		log "building ${missing[*]##*/} failed"
		rm -rf "$tmp"
		exit 1
	fi
	for pkg in "${missing[@]}"; do
		mv "$tmp/${pkg##*/}" "$bin/${pkg##*/}"
	done
	rm -rf "$tmp"
}

build() { # build <module dir> <output name> <package> [ldflags]
	local dir="$1" name="$2" pkg="$3" ldflags="${4:-}"
	if [[ -x "$bin/$name" ]]; then
		return 0
	fi
	log "building $name ($pkg) — the first build takes a while"
	local tmp="$bin/.$name.tmp"
	if ! (cd "$here/$dir" && go build -trimpath -ldflags "-s -w $ldflags" -o "$tmp" "$pkg") >&2; then
		log "building $name failed"
		rm -f "$tmp"
		exit 1
	fi
	mv "$tmp" "$bin/$name"
}

minor="${k8s_version#v1.}"
minor="${minor%%.*}"
v=k8s.io/component-base/version
k8s_ldflags="-X $v.gitVersion=$k8s_version -X $v.gitMajor=1 -X $v.gitMinor=$minor \
 -X $v.gitTreeState=clean -X $v.buildDate=1970-01-01T00:00:00Z \
 -X k8s.io/client-go/pkg/version.gitVersion=$k8s_version \
 -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"

build etcd etcd sluice.dev/hack/kube/etcd
build_all k8s "$k8s_ldflags" k8s.io/kubernetes/cmd/kube-apiserver \
	k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler \
	k8s.io/kubernetes/cmd/kubectl k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy
build kwok kwok sigs.k8s.io/kwok/cmd/kwok
build pause pause sluice.dev/hack/kube/pause

echo "$bin"
