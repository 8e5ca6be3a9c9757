#!/bin/sh
# Installs what tapmesh needs to build and test on Debian 12, and nothing
# that is already there. Safe to run again. Uses sudo when not root.
# With --bench, also what bench/run uses beyond the tests (its chart and its
# instruction counts).
set -eu

packages="
  gcc make cmake pkg-config
  libzmq3-dev libczmq-dev libpcap-dev libcjson-dev libmicrohttpd-dev libcurl4-openssl-dev libzstd-dev libcmocka-dev
  tcpdump tshark wireshark-common tcpreplay prometheus curl iproute2 procps nftables
  man-db groff-base systemd python3-yaml jq docker-compose libcap2-bin tmux influxdb
"
[ "${1:-}" = --bench ] && packages="$packages gnuplot-nox valgrind"

missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "install-deps: everything is installed"
    exit 0
fi

sudo=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps: need root (or sudo) to install:$missing" >&2; exit 1; }
    sudo=sudo
fi
echo "install-deps: installing$missing"
# tshark asks whether non-root users may capture; answer no, without a prompt
echo "wireshark-common wireshark-common/install-setuid boolean false" | $sudo debconf-set-selections
$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
# shellcheck disable=SC2086
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "install-deps: done"
