#!/bin/bash
# tapmesh-healthcheck — the tapmesh image's container healthcheck: GET
# /healthz of the service in this container, exit 0 on "200", 1 otherwise
# (refused, no answer within the timeout, or 503 from a stuck event loop;
# the answer's last line is printed, so `docker inspect` shows why).
# Written for bash's /dev/tcp, so that the runtime image needs neither curl
# nor wget.
#
#   tapmesh-healthcheck [HOST:PORT | :PORT | PORT]
#
# Without an argument, where the service listens comes from its own
# setting, TAPMESH_METRICS_ADDRPORT or METRICS_ADDRPORT (the container's
# environment is the service's); when neither is set, from the program
# running as the container's process 1 and its default port (capture 9710,
# relay 9711, collect 9712). METRICS_ADDRPORT set empty turns the metrics
# server off, and with it /healthz: nothing to probe, exit 0.
# HEALTHCHECK_TIMEOUT_S (default 4) bounds the wait for the answer.
set -u

addr=${1-}
if [ -z "$addr" ]; then
    if [ -n "${TAPMESH_METRICS_ADDRPORT+set}" ]; then
        addr=$TAPMESH_METRICS_ADDRPORT
    elif [ -n "${METRICS_ADDRPORT+set}" ]; then
        addr=$METRICS_ADDRPORT
    else
        case $(cat /proc/1/comm 2>/dev/null) in
        tapmesh-capture) addr=:9710 ;;
        tapmesh-relay) addr=:9711 ;;
        tapmesh-collect) addr=:9712 ;;
        *)
            echo "tapmesh-healthcheck: METRICS_ADDRPORT is not set and process 1 is no tapmesh service: give HOST:PORT"
            exit 1
            ;;
        esac
    fi
    if [ -z "$addr" ]; then
        echo "tapmesh-healthcheck: METRICS_ADDRPORT is empty: metrics and /healthz are off, nothing to probe"
        exit 0
    fi
fi

case $addr in
*:*) host=${addr%:*} port=${addr##*:} ;;
*) host='' port=$addr ;;
esac
host=${host#[}
host=${host%]}
# a wildcard bind answers on loopback
case $host in
'' | '*' | 0.0.0.0) host=127.0.0.1 ;;
:: | ::0) host=::1 ;;
esac
case $port in
'' | *[!0-9]*)
    echo "tapmesh-healthcheck: '$addr': no port"
    exit 1
    ;;
esac

timeout=${HEALTHCHECK_TIMEOUT_S:-4}
if ! { exec 3<>"/dev/tcp/$host/$port"; } 2>/dev/null; then
    echo "tapmesh-healthcheck: $host:$port: nothing listens"
    exit 1
fi
printf 'GET /healthz HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
status='' last=''
IFS= read -r -t "$timeout" status <&3 || true
status=${status%$'\r'}
# the last line of the answer (a body without a final newline too)
while [ -n "$status" ]; do
    rc=0
    IFS= read -r -t "$timeout" line <&3 || rc=$?
    line=${line%$'\r'}
    [ -z "$line" ] || last=$line
    [ "$rc" = 0 ] || break
done
exec 3<&-
case $status in
"HTTP/1."[01]" 200"*)
    echo "$host:$port: ${last:-ok}"
    exit 0
    ;;
'')
    echo "tapmesh-healthcheck: $host:$port: no answer within ${timeout} s"
    exit 1
    ;;
*)
    echo "tapmesh-healthcheck: $host:$port: $status: $last"
    exit 1
    ;;
esac
