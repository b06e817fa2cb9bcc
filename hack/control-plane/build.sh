#!/usr/bin/env bash
# Builds the real control plane of the test tier that runs against it (docs/dev.md, "Test
# tiers") into OUT_DIR: kube-apiserver and kube-controller-manager of the k8s.io/kubernetes
# version pinned in go.mod (next to this script), and etcd (go.etcd.io/etcd/server/v3).
# `make control-plane` runs it behind a stamp that depends on go.mod, go.sum and this
# script, so changing any of them rebuilds (incrementally: Go's build cache).
#
# Cold, on 2 shared cores, it takes minutes (see docs/dev.md); GOFLAGS=-p=1 and `nice` are
# the caller's to add when the machine is shared.
set -euo pipefail

out=${1:?usage: build.sh OUT_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "${BASH_SOURCE[0]}")"

need="1.24"  # k8s.io/kubernetes v1.33 declares `go 1.24.0`
command -v go >/dev/null || {
  echo "make control-plane: \`go\` not found. It needs Go >= $need (https://go.dev/dl/) to build" >&2
  echo "  kube-apiserver, kube-controller-manager and etcd from source." >&2
  exit 1
}
have=$(go env GOVERSION)  # go1.26.8
minor=${have#go1.}; minor=${minor%%.*}
if [[ ! $have =~ ^go1\.[0-9]+ ]] || (( minor < ${need#1.} )); then
  echo "make control-plane: $have is too old; it needs Go >= $need (https://go.dev/dl/)" >&2
  exit 1
fi

k8s=$(awk '$1 == "k8s.io/kubernetes" { print $2 }' go.mod)   # v1.33.13
[[ $k8s =~ ^v1\.([0-9]+)\.[0-9]+$ ]] || { echo "build.sh: no k8s.io/kubernetes version in go.mod" >&2; exit 1; }
# What Kubernetes' own build (hack/lib/version.sh) stamps, so /version and the
# compatibility version say v1.33.x instead of v0.0.0-master.
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$k8s -X $pkg.gitMajor=1 -X $pkg.gitMinor=${BASH_REMATCH[1]}"
  ldflags+=" -X $pkg.gitTreeState=clean"
done

tmp=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# One `go build` for the three, so Go schedules their shared packages once. Static
# (CGO_ENABLED=0), as Kubernetes releases them; -trimpath and -s -w cut link time and size.
CGO_ENABLED=0 go build -mod=readonly -buildvcs=false -trimpath -ldflags "$ldflags" -o "$tmp/" \
  k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager \
  go.etcd.io/etcd/server/v3
mv "$tmp/kube-apiserver" "$tmp/kube-controller-manager" "$out/"
mv "$tmp/server" "$out/etcd"   # go names the binary of .../server/v3 after "server"
"$out/kube-apiserver" --version
"$out/etcd" --version | head -1
