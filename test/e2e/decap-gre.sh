#!/usr/bin/env bash
# DECAP for the tunnels this kernel cannot make (GRETAP, GRE, ERSPAN I, II,
# III): test/tools/tunnel-pcap.py wraps the sample capture's frames as a
# switch's mirror session would, with a key or session id and, for ERSPAN
# III, the frames' own times as the switch's timestamps while the capture
# times are 3.5 s later. The agent reads each file (READ_FILE) with DECAP,
# and the collector's output holds exactly the inner frames, byte for byte
# and in order; what tshark's own dissectors read from the input (gre.key,
# erspan.spanid, erspan.timestamp) is what the agent kept: the id in the
# interface's description, the switch's timestamps (TSTAMP_SOURCE=erspan)
# as the packets' times. A DECAP_ID that does not match and frames that
# pass the capture filter with no tunnel inside are counted, not sent.
. "$(dirname "$0")/lib.sh"
need tshark tcpdump curl ss python3

input=$DATA/sample-ether.pcap
tunnel=$root/test/tools/tunnel-pcap.py
n=$(tcpdump -nn -r "$input" 2>/dev/null | wc -l)
python3 "$tunnel" raw "$input" "$WORK/raw.pcap"

# run NAME EXPECTED_LINKTYPE_NAME CAPTURE_SETTINGS...: the agent reads a file
# into a collector of its own, which writes $WORK/NAME.pcapng
run() {
    local name=$1
    shift
    pick_port
    local port=$PORT
    start "collect-$name" COLLECT_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= \
        OUTPUT=$WORK/$name.pcapng STARTUP_WAIT_MS=0 -- "$COLLECT"
    start "capture-$name" RELAY_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT= \
        NODE_ID=$name "$@" -- "$CAPTURE"
    expect_exit "capture-$name" 60 0
    stop "collect-$name"
    [ "$RC" = 0 ] || fail "collect-$name exited $RC"
}

# description FILE: the interface description of the output's packets
description() {
    tshark -r "$1" -T fields -e frame.interface_description 2>/dev/null | sort -u
}

# GRETAP with key 42: the Ethernet frames, the key in the description
python3 "$tunnel" gretap "$input" "$WORK/gretap.pcap" --id 42
[ "$(tshark -r "$WORK/gretap.pcap" -T fields -e gre.key 2>/dev/null | sort -u)" = 0x0000002a ] ||
    fail "tshark does not read key 42 in the GRETAP input"
run gretap READ_FILE="$WORK/gretap.pcap" DECAP=gretap DECAP_ID=42
same_packets --ignore-ts "$input" "$WORK/gretap.pcapng"
description "$WORK/gretap.pcapng" | has "; decap gretap key 42;"
readers_accept "$WORK/gretap.pcapng" "$n"

# GRE carrying IP: raw IP packets (link type 101)
python3 "$tunnel" gre "$input" "$WORK/gre.pcap" --id 7
[ "$(tshark -r "$WORK/gre.pcap" -T fields -e gre.key 2>/dev/null | sort -u)" = 0x00000007 ] ||
    fail "tshark does not read key 7 in the GRE input"
run gre READ_FILE="$WORK/gre.pcap" DECAP=gre DECAP_ID=7
same_packets --ignore-ts "$WORK/raw.pcap" "$WORK/gre.pcapng"
capinfos -E "$WORK/gre.pcapng" | has "Raw IP"
description "$WORK/gre.pcapng" | has "; decap gre key 7;"

# GRE carrying IP under DECAP=auto: an Ethernet header with zero addresses
run greauto READ_FILE="$WORK/gre.pcap" DECAP=auto
[ "$(tshark -r "$WORK/greauto.pcapng" -T fields -e eth.src -e eth.dst 2>/dev/null | sort -u)" = \
    "$(printf '00:00:00:00:00:00\t00:00:00:00:00:00')" ] || fail "DECAP=auto: not zero addresses"
tshark -r "$WORK/greauto.pcapng" -T fields -e ip.id -e ipv6.plen 2>/dev/null >"$WORK/greauto.ids"
tshark -r "$WORK/raw.pcap" -T fields -e ip.id -e ipv6.plen 2>/dev/null >"$WORK/raw.ids"
cmp -s "$WORK/greauto.ids" "$WORK/raw.ids" || fail "DECAP=auto: not the inner IP packets"
description "$WORK/greauto.pcapng" | has "; decap auto;"

# ERSPAN type I (no ERSPAN header) and II (session 300, over IPv6)
python3 "$tunnel" erspan1 "$input" "$WORK/erspan1.pcap"
run erspan1 READ_FILE="$WORK/erspan1.pcap" DECAP=erspan
same_packets --ignore-ts "$input" "$WORK/erspan1.pcapng"
python3 "$tunnel" erspan2 "$input" "$WORK/erspan2.pcap" --id 300 --ipv6
[ "$(tshark -r "$WORK/erspan2.pcap" -T fields -e erspan.version -e erspan.spanid 2>/dev/null |
    sort -u)" = "$(printf '1\t300')" ] || fail "tshark does not read ERSPAN II session 300"
run erspan2 READ_FILE="$WORK/erspan2.pcap" DECAP=erspan DECAP_ID=300
same_packets --ignore-ts "$input" "$WORK/erspan2.pcapng"
description "$WORK/erspan2.pcapng" | has "; decap erspan session 300;"

# ERSPAN III, IEEE 1588 granularity: the switch's times are the sample's
# own, the capture times 3.5 s later; TSTAMP_SOURCE=erspan gives back the
# sample exactly, timestamps included
python3 "$tunnel" erspan3 "$input" "$WORK/erspan3.pcap" --id 5 --gra 2 --shift-ns 3500000000
tshark -r "$WORK/erspan3.pcap" -T fields -e erspan.pid3.timestamp -e erspan.timestamp \
    2>/dev/null | awk '{printf "%d.%09d\n", $1, $2}' >"$WORK/erspan3.switch"
[ "$(wc -l <"$WORK/erspan3.switch")" = "$n" ] || fail "tshark reads no ERSPAN III timestamps"
run erspan3 READ_FILE="$WORK/erspan3.pcap" DECAP=erspan DECAP_ID=5 TSTAMP_SOURCE=erspan
same_packets "$input" "$WORK/erspan3.pcapng"
tshark -r "$WORK/erspan3.pcapng" -T fields -e frame.time_epoch 2>/dev/null >"$WORK/erspan3.out"
cmp -s "$WORK/erspan3.switch" "$WORK/erspan3.out" ||
    fail "output times differ from the ERSPAN III timestamps: $(diff "$WORK/erspan3.switch" \
        "$WORK/erspan3.out" | head -4)"
# without TSTAMP_SOURCE the capture times stay
run erspan3cap READ_FILE="$WORK/erspan3.pcap" DECAP=erspan
tshark -r "$WORK/erspan3cap.pcapng" -T fields -e frame.time_epoch 2>/dev/null >"$WORK/erspan3cap.out"
tshark -r "$WORK/erspan3.pcap" -T fields -e frame.time_epoch 2>/dev/null >"$WORK/erspan3.cap"
cmp -s "$WORK/erspan3cap.out" "$WORK/erspan3.cap" || fail "capture times were not kept"

# ERSPAN III, 100 ns granularity with the upper word: times cut to 100 ns
python3 "$tunnel" erspan3 "$input" "$WORK/erspan3g1.pcap" --id 5 --gra 1 --shift-ns 3500000000
run erspan3g1 READ_FILE="$WORK/erspan3g1.pcap" DECAP=erspan TSTAMP_SOURCE=erspan
tshark -r "$input" -T fields -e frame.time_epoch 2>/dev/null |
    awk -F. '{printf "%s.%07d00\n", $1, substr($2, 1, 7)}' >"$WORK/g1.want"
tshark -r "$WORK/erspan3g1.pcapng" -T fields -e frame.time_epoch 2>/dev/null >"$WORK/g1.out"
cmp -s "$WORK/g1.want" "$WORK/g1.out" ||
    fail "100 ns ERSPAN III times: $(diff "$WORK/g1.want" "$WORK/g1.out" | head -4)"

# counted, not sent: another session (DECAP_ID), and GRE that is not
# ERSPAN (--noise: PPTP's GRE after every 10th frame). The agent reads from
# a pipe held open so that its counters can be read before it exits.
python3 "$tunnel" erspan2 "$input" "$WORK/noisy.pcap" --id 300 --noise
noise=$((n / 10))
pick_port
cport=$PORT
pick_port
mport=$PORT
start collect-noisy COLLECT_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT= \
    OUTPUT=$WORK/noisy.pcapng STARTUP_WAIT_MS=0 -- "$COLLECT"
mkfifo "$WORK/pipe"
IN_FROM=$WORK/pipe start capture-noisy RELAY_ENDPOINT=tcp://127.0.0.1:$cport \
    METRICS_ADDRPORT=127.0.0.1:$mport NODE_ID=noisy READ_FILE=- DECAP=erspan DECAP_ID=301 \
    -- "$CAPTURE"
exec 3>"$WORK/pipe"
cat "$WORK/noisy.pcap" >&3
wait_metric "$mport" 'tapmesh_capture_decap_dropped_packets_total{reason="id"}' "$n" 20
wait_metric "$mport" 'tapmesh_capture_decap_dropped_packets_total{reason="other"}' "$noise" 5
[ "$(metric "$mport" tapmesh_capture_packets_total)" = 0 ] || fail "another session was sent"
promcheck "$mport"
exec 3>&-
expect_exit capture-noisy 60 0
stop collect-noisy
[ "$(tcpdump -r "$WORK/noisy.pcapng" 2>/dev/null | wc -l)" = 0 ] || fail "packets reached the output"

# a setting that cannot work stops start-up, naming it
start bad READ_FILE="$WORK/gre.pcap" TSTAMP_SOURCE=erspan DECAP=gre METRICS_ADDRPORT= -- "$CAPTURE"
expect_exit bad 10 2
has "TSTAMP_SOURCE=erspan: needs DECAP=erspan" <"$WORK/bad.log"
log "ok: GRETAP, GRE, ERSPAN I/II/III inner frames, ids and switch timestamps; others counted"
