#!/usr/bin/env bash
# Every service, as a binary: --help lists every setting with its flag and
# default; a bad value stops start-up with status 2 and one line naming the
# variable and the value; flags override the environment.
. "$(dirname "$0")/lib.sh"

# expect_bad NAME BINARY VAR VALUE: status 2, a message naming VAR and VALUE
expect_bad() {
    local name=$1 bin=$2 var=$3 value=$4 out rc=0
    out=$(env "$var=$value" "$bin" 2>&1 >/dev/null) || rc=$?
    [ "$rc" = 2 ] || fail "$name with $var='$value' exited $rc, expected 2 ($out)"
    [ "$(printf '%s\n' "$out" | wc -l)" = 1 ] || fail "$name: more than one line: $out"
    case "$out" in *"$var"*"$value"*) ;; *) fail "$name: '$out' does not name $var and '$value'" ;; esac
}

for bin in "$CAPTURE" "$RELAY" "$COLLECT"; do
    name=$(basename "$bin")
    help=$("$bin" --help) || fail "$name --help failed"
    for var in NODE_ID METRICS_ADDRPORT LOG_LEVEL; do
        flag=--$(echo "$var" | tr 'A-Z_' 'a-z-')
        printf '%s\n' "$help" | has "^  $var, $flag " || fail "$name --help lacks $var / $flag"
    done
    "$bin" --version | has "^$name [0-9]" || fail "$name --version"
    expect_bad "$name" "$bin" LOG_LEVEL loud
    expect_bad "$name" "$bin" NODE_ID 'bad id!'
    expect_bad "$name" "$bin" METRICS_ADDRPORT '127.0.0.1:99999'
    rc=0
    out=$("$bin" --no-such-flag 2>&1) || rc=$?
    [ "$rc" = 2 ] && [[ "$out" == *"--no-such-flag"* ]] || fail "$name: unknown flag gave $rc: $out"
done

# capture
"$CAPTURE" --help | has "^  READ_FILE, --read-file PATH" || fail "capture --help lacks READ_FILE"
"$CAPTURE" --help | has "default: tcp://127.0.0.1:5710" || fail "capture --help lacks defaults"
expect_bad capture "$CAPTURE" READ_FILE /no/such/file.pcap
export READ_FILE=$DATA/sample-ether.pcap
expect_bad capture "$CAPTURE" RELAY_ENDPOINT 'tcp://nohost'
expect_bad capture "$CAPTURE" BATCH_MAX_BYTES 12
expect_bad capture "$CAPTURE" BATCH_MAX_BYTES 1x
expect_bad capture "$CAPTURE" REPLAY_SPEED -1
# a flag overrides the environment: the flag's bad value is the one reported
rc=0
out=$(BATCH_MAX_BYTES=65536 "$CAPTURE" --batch-max-bytes 5 2>&1) || rc=$?
[ "$rc" = 2 ] && [[ "$out" == *"--batch-max-bytes (BATCH_MAX_BYTES)='5'"* ]] ||
    fail "flag did not override the environment: $rc $out"
# a file libpcap cannot read: status 2, libpcap's reason, the variable named
echo "not a capture" >"$WORK/junk.pcap"
rc=0
out=$(READ_FILE=$WORK/junk.pcap RELAY_ENDPOINT=tcp://127.0.0.1:1 METRICS_ADDRPORT= "$CAPTURE" 2>&1) || rc=$?
[ "$rc" = 2 ] && [[ "$out" == *READ_FILE*junk.pcap* ]] || fail "unreadable capture file: $rc $out"
unset READ_FILE
# exactly one of DEVICE and READ_FILE
rc=0
out=$(METRICS_ADDRPORT= "$CAPTURE" 2>&1) || rc=$?
[ "$rc" = 2 ] && [[ "$out" == *"set DEVICE"*"READ_FILE"* ]] || fail "nothing to capture: $rc $out"
rc=0
out=$(METRICS_ADDRPORT= DEVICE=lo READ_FILE=$DATA/sample-ether.pcap "$CAPTURE" 2>&1) || rc=$?
[ "$rc" = 2 ] && [[ "$out" == *"not both"* ]] || fail "DEVICE and READ_FILE: $rc $out"
# a filter that does not compile: libpcap's message, FILTER named
rc=0
out=$(METRICS_ADDRPORT= READ_FILE=$DATA/sample-ether.pcap FILTER='tcp prot 80' "$CAPTURE" 2>&1) || rc=$?
[ "$rc" = 2 ] && [[ "$out" == *"FILTER='tcp prot 80': "*"syntax error"* ]] || fail "bad filter: $rc $out"
# an interface that does not exist, a timestamp type that is not offered
rc=0
out=$(METRICS_ADDRPORT= DEVICE=nosuch0 "$CAPTURE" 2>&1) || rc=$?
[ "$rc" = 2 ] && [[ "$out" == *"DEVICE=nosuch0"* ]] || fail "missing interface: $rc $out"
rc=0
out=$(METRICS_ADDRPORT= DEVICE=lo TSTAMP_TYPE=bogus "$CAPTURE" 2>&1) || rc=$?
[ "$rc" = 2 ] && [[ "$out" == *"TSTAMP_TYPE=bogus: not a timestamp type; lo offers"* ]] ||
    fail "bad timestamp type: $rc $out"
expect_bad capture "$CAPTURE" SNAPLEN 262145
expect_bad capture "$CAPTURE" PROMISC maybe

# relay
expect_bad relay "$RELAY" RELAY_ENDPOINT 'tcp://127.0.0.1:1,udp://x:1'
expect_bad relay "$RELAY" COLLECT_ENDPOINT 'http://x'

# collect
expect_bad collect "$COLLECT" OUTPUT_FORMAT pcapng2
expect_bad collect "$COLLECT" LINKTYPE_POLICY any
expect_bad collect "$COLLECT" MERGE_WINDOW_MS -5
expect_bad collect "$COLLECT" ROTATE_MB -1
expect_bad collect "$COLLECT" MAX_BATCH_MB 65
rc=0
out=$(ROTATE_MB=10 OUTPUT=- METRICS_ADDRPORT= "$COLLECT" 2>&1) || rc=$?
[ "$rc" = 2 ] && [[ "$out" == *"ROTATE_MB/ROTATE_S need OUTPUT to be a file"* ]] ||
    fail "rotation of stdout: $rc $out"
rc=0
out=$(STATE_DIR=/etc/passwd/x OUTPUT=/dev/null METRICS_ADDRPORT= "$COLLECT" 2>&1) || rc=$?
[ "$rc" = 2 ] && [[ "$out" == *"STATE_DIR=/etc/passwd/x"* ]] || fail "bad STATE_DIR: $rc $out"
rc=0
out=$(DLQ_DIR=/etc/passwd/x READ_FILE=$DATA/sample-ether.pcap METRICS_ADDRPORT= "$CAPTURE" 2>&1) || rc=$?
[ "$rc" = 2 ] && [[ "$out" == *"DLQ_DIR='/etc/passwd/x'"* ]] || fail "bad DLQ_DIR: $rc $out"
rc=0
out=$(OUTPUT=/no/such/dir/out.pcapng METRICS_ADDRPORT= COLLECT_ENDPOINT=tcp://127.0.0.1:$(free_port) \
    "$COLLECT" 2>&1) || rc=$?
[ "$rc" = 2 ] && [[ "$out" == *OUTPUT*"/no/such/dir/out.pcapng"* ]] || fail "bad OUTPUT: $rc $out"
# a metrics port in use is named
pick_port; port=$PORT
pick_port
start holder COLLECT_ENDPOINT=tcp://127.0.0.1:$PORT METRICS_ADDRPORT=127.0.0.1:$port \
    OUTPUT=/dev/null -- "$COLLECT"
wait_listening "$port" 10
rc=0
out=$(METRICS_ADDRPORT=127.0.0.1:$port COLLECT_ENDPOINT=tcp://127.0.0.1:$(free_port) OUTPUT=/dev/null \
    "$COLLECT" 2>&1) || rc=$?
[ "$rc" = 2 ] && [[ "$out" == *"METRICS_ADDRPORT='127.0.0.1:$port'"* ]] || fail "port in use: $rc $out"
log "ok"
