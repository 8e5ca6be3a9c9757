#!/bin/sh
# keygen.sh — the compose lab's one-shot `keygen` service: every CurveZMQ
# certificate of the lab, made with tapmesh-keygen, each service's in a
# volume of its own (mounted at $KEYS/<service>; the service mounts it
# read-only at /var/lib/tapmesh/keys), so that no container holds another's
# secret key. A service's volume holds:
#
#   <service>, <service>_secret  its own pair (CURVE_SECRET_KEY_FILE is the _secret)
#   next/<hop>                   the next hop's public certificate (CURVE_SERVER_PUBLIC_KEY)
#   allow/<peer>...              the public certificates of those that connect to it
#                                (CURVE_ALLOWED_KEYS_DIR)
#
# Agents' certificates name their NODE_ID (--node-id), relays' are --relay:
# each hop checks that its peer may speak for the sources it sends.
# Run again (every `docker compose up`), it keeps the pairs it finds and
# lays out next/ and allow/ afresh from them; remove a service's volume to
# give it a new pair. Started as root, it hands the volumes to KEYS_OWNER
# (default tapmesh, the services' user) and does the rest as that user.
set -eu

KEYS=${KEYS:-/keys}
KEYS_OWNER=${KEYS_OWNER-tapmesh}

# service   certificate options (what the holder may speak for)
PAIRS='
capture-a  --node-id edge-a
capture-b  --node-id edge-b
relay-site --relay
relay-core --relay
collect
'
# who connects to whom: service -> next hop
LINKS='
capture-a  relay-site
capture-b  relay-site
relay-site relay-core
relay-core collect
'

if [ "$(id -u)" = 0 ] && [ -n "$KEYS_OWNER" ]; then
    uid=$(id -u "$KEYS_OWNER")
    gid=$(id -g "$KEYS_OWNER")
    echo "$PAIRS" | while read -r service _; do
        [ -z "$service" ] || chown "$uid:$gid" "$KEYS/$service"
    done
    exec setpriv --reuid="$uid" --regid="$gid" --clear-groups sh "$0" "$@"
fi
umask 027

echo "$PAIRS" | while read -r service options; do
    [ -n "$service" ] || continue
    dir=$KEYS/$service
    [ -d "$dir" ] || {
        echo "keygen: $dir: no such directory (the volume of $service)" >&2
        exit 1
    }
    if [ -f "$dir/$service" ] && [ -f "$dir/${service}_secret" ]; then
        echo "keygen: $service: keeping its pair"
    else
        # a pair cut short (one file of the two) is made again
        rm -f "$dir/$service" "$dir/${service}_secret"
        # shellcheck disable=SC2086 # options are words
        tapmesh-keygen "$dir/$service" $options >/dev/null
    fi
    rm -rf "$dir/next" "$dir/allow"
done

echo "$LINKS" | while read -r from to; do
    [ -n "$from" ] || continue
    mkdir -p "$KEYS/$from/next" "$KEYS/$to/allow"
    cp "$KEYS/$to/$to" "$KEYS/$from/next/$to"
    cp "$KEYS/$from/$from" "$KEYS/$to/allow/$from"
    echo "keygen: $from -> $to: $to allows $from"
done
