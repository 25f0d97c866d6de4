#!/usr/bin/env bash
# Builds etcd and kube-apiserver from this module's pinned sources.
#
#   build.sh DIR         build both into DIR
#   build.sh             build both into the folder the kubetest harness
#                        looks in: $SLIPWAY_KUBE_BIN if set, else
#                        ${XDG_CACHE_HOME:-$HOME/.cache}/slipway/kube-HASH, HASH
#                        being the first 12 hex digits of the SHA-256 of
#                        go.mod, go.sum and etcd/main.go (kubetest.BinDir)
#   build.sh --print-dir print that folder and exit
#
# CI runs it before the tests (and times it); the harness runs it when the
# folder lacks a binary. A binary already there is kept. Each one is written
# under a temporary name and renamed, so a killed build never leaves a half
# binary behind. The first build takes about 15 minutes on 2 cores
# (kube-apiserver alone some 13); with a warm Go build cache, a minute.
set -euo pipefail
cd "$(dirname "$0")"
default_dir() {
  if [ -n "${SLIPWAY_KUBE_BIN:-}" ]; then
    echo "$SLIPWAY_KUBE_BIN"
    return
  fi
  local hash
  hash=$(cat go.mod go.sum etcd/main.go | sha256sum | cut -c1-12)
  echo "${XDG_CACHE_HOME:-$HOME/.cache}/slipway/kube-$hash"
}
case "${1:-}" in
  --print-dir) default_dir; exit 0 ;;
  "") dir=$(default_dir) ;;
  *) dir=$1 ;;
esac
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
build() { # name package
  local tmp="$dir/.$1.tmp.$$"
  trap 'rm -f "$tmp"' EXIT
  go build -trimpath -o "$tmp" "$2"
  mv -f "$tmp" "$dir/$1"
  trap - EXIT
}
[ -x "$dir/etcd" ] || build etcd ./etcd
[ -x "$dir/kube-apiserver" ] || build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
echo "$dir"
