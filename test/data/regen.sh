#!/bin/sh
# Rebuilds the sample captures from test/tools/gen-sample.c (deterministic).
# Needs gcc, libpcap-dev and editcap (wireshark-common).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
gcc -O2 -o "$tmp/gen-sample" "$here/../tools/gen-sample.c" -lpcap
"$tmp/gen-sample" "$here/sample-ether.pcap" 800 ether
"$tmp/gen-sample" "$tmp/raw.pcap" 400 raw
editcap -F pcapng "$tmp/raw.pcap" "$here/sample-rawip.pcapng"
