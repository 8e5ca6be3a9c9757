#!/bin/sh
# Makes the CurveZMQ certificates the manifests read (base/kustomization.yaml,
# secretGenerator) into base/keys/, once: one for every capture agent, one
# for the relays (role = relay), one for the collectors.
#
#   deploy/kubernetes/make-keys.sh ['NODE PATTERN']
#
# Every agent of the DaemonSet holds the same certificate, so it names the
# node ids they may send for: NODE_ID is the node's name, and the pattern
# (default *, any node) can narrow it to your nodes' names (worker-*).
# tapmesh-keygen comes from PATH, or KEYGEN names it; without it installed,
# the image has it (the directory mounted at the same path inside):
#   k=$PWD/deploy/kubernetes/base/keys; mkdir -p "$k"
#   KEYGEN="docker run --rm -u $(id -u) -v $k:$k tapmesh tapmesh-keygen" deploy/kubernetes/make-keys.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
keys=$here/base/keys
keygen=${KEYGEN:-tapmesh-keygen}
pattern=${1:-*}

for name in capture relay collect; do
    if [ -e "$keys/$name" ] || [ -e "$keys/${name}_secret" ]; then
        echo "make-keys.sh: $keys/$name exists; certificates are made once (remove them to make new ones)" >&2
        exit 1
    fi
done
mkdir -p "$keys"
$keygen "$keys/capture" --node-id "$pattern"
$keygen "$keys/relay" --relay
$keygen "$keys/collect"
echo "make-keys.sh: certificates in $keys; now: kubectl apply -k $here/base (or overlays/scale-out)"
