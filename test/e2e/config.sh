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

# DESCRIPTION travels in every HELLO as wire text (proto/wire-v2.md §2): a
# value the wire cannot carry stops start-up with status 2 and one line
# naming DESCRIPTION (the value escaped), instead of every HELLO failing and
# every batch being dead-lettered. `timeout` bounds the run should it start.
pick_port; dead_port=$PORT
bad_description() { # VALUE ESCAPED REASON
    local rc=0 out
    out=$(DESCRIPTION=$1 READ_FILE=$DATA/sample-ether.pcap RELAY_ENDPOINT=tcp://127.0.0.1:$dead_port \
        METRICS_ADDRPORT= RETRY_TIMEOUT_S=1 ACK_TIMEOUT_MS=100 timeout 30 "$CAPTURE" 2>&1 >/dev/null) ||
        rc=$?
    [ "$rc" = 2 ] || fail "DESCRIPTION=$(printf %q "$1") exited $rc, expected 2: $(head -n 3 <<<"$out")"
    [ "$(printf '%s\n' "$out" | wc -l)" = 1 ] || fail "DESCRIPTION=$(printf %q "$1"): not one line: $out"
    [[ "$out" == *"DESCRIPTION='$2': $3"* ]] ||
        fail "DESCRIPTION=$(printf %q "$1"): '$out' lacks DESCRIPTION='$2': $3"
}
bad_description $'rack\x01 4' 'rack\x01 4' "control character"
bad_description $'two\nlines' 'two\nlines' "control character"
bad_description $'red \x1b[31m' 'red \x1b[31m' "control character"
bad_description $'caf\xe9' 'caf\xe9' "not UTF-8"
bad_description $'surrogate \xed\xa0\x80' 'surrogate \xed\xa0\x80' "not UTF-8"
# (a long value is shown cut, so that the reason still fits the line)
bad_description "$(printf 'x%.0s' $(seq 1 1025))" "$(printf 'x%.0s' $(seq 1 400))..." "longer than 1024 bytes"

# Settings may also be given as TAPMESH_<NAME>, which wins over NAME (generic
# names like OUTPUT or FILTER may come from a container's own environment);
# a flag wins over both. The bad TAPMESH_ value is the one reported.
"$CAPTURE" --help | has "TAPMESH_NAME, which wins over NAME" || fail "capture --help does not mention TAPMESH_ names"
rc=0
out=$(NODE_ID=plain TAPMESH_NODE_ID='bad id!' METRICS_ADDRPORT= "$CAPTURE" 2>&1) || rc=$?
[ "$rc" = 2 ] && [[ "$out" == *"TAPMESH_NODE_ID='bad id!'"* ]] || fail "TAPMESH_NODE_ID not read: $rc $out"
rc=0
out=$(NODE_ID='bad id!' TAPMESH_NODE_ID=fine METRICS_ADDRPORT= "$CAPTURE" 2>&1) || rc=$?
[ "$rc" = 2 ] && [[ "$out" == *"nothing to capture"* && "$out" != *"bad id"* ]] ||
    fail "NODE_ID was checked although TAPMESH_NODE_ID is set: $rc $out"
# A mistyped or stray name is logged as a warning (start-up goes on); the
# variables ctest gives this script are not passed on to the binaries.
rc=0
out=$(DEVCE=lo TAPMESH_BOGUS=1 METRICS_ADDRPORT= "$CAPTURE" 2>&1) || rc=$?
[ "$rc" = 2 ] && [[ "$out" == *"nothing to capture"* ]] || fail "DEVCE=lo: $rc $out"
printf '%s\n' "$out" | has 'tapmesh-capture\[[0-9]*\] warn: DEVCE is no setting; did you mean DEVICE?$' ||
    fail "no typo warning for DEVCE: $out"
printf '%s\n' "$out" | has 'tapmesh-capture\[[0-9]*\] warn: TAPMESH_BOGUS is no setting' ||
    fail "no warning for TAPMESH_BOGUS: $out"
[ "$(printf '%s\n' "$out" | grep -c 'is no setting')" = 2 ] || fail "other warnings: $out"
rc=0
out=$(METRICS_ADDRPORT= "$CAPTURE" 2>&1) || rc=$?
[ "$rc" = 2 ] && [[ "$out" != *"is no setting"* ]] || fail "warnings from the test's own environment: $out"

# Observed end to end: the output's IDB is named after TAPMESH_NODE_ID (or
# the flag), never the plain NODE_ID, and carries a multi-byte UTF-8
# DESCRIPTION whole.
pick_port; tm_data=$PORT
pick_port; tm_metrics=$PORT
descr='Zürich → rack 4 ✓ 😀'
start tm-collect COLLECT_ENDPOINT=tcp://127.0.0.1:$tm_data METRICS_ADDRPORT=127.0.0.1:$tm_metrics \
    OUTPUT=$WORK/tm.pcapng NODE_ID=collector -- "$COLLECT"
wait_listening "$tm_metrics" 10
start tm-env NODE_ID=plain TAPMESH_NODE_ID=winner "DESCRIPTION=$descr" READ_FILE=$DATA/sample-ether.pcap \
    RELAY_ENDPOINT=tcp://127.0.0.1:$tm_data METRICS_ADDRPORT= -- "$CAPTURE"
expect_exit tm-env 60 0
start tm-flag NODE_ID=plain TAPMESH_NODE_ID=winner READ_FILE=$DATA/sample-ether.pcap \
    RELAY_ENDPOINT=tcp://127.0.0.1:$tm_data METRICS_ADDRPORT= -- "$CAPTURE" --node-id flagged
expect_exit tm-flag 60 0
wait_metric "$tm_metrics" 'tapmesh_collect_source_packets_total{source="winner"}' 800 5
wait_metric "$tm_metrics" 'tapmesh_collect_source_packets_total{source="flagged"}' 800 5
[ -z "$(metric "$tm_metrics" 'tapmesh_collect_source_packets_total{source="plain"}')" ] ||
    fail "a source named after the plain NODE_ID"
stop tm-collect
[ "$RC" = 0 ] || fail "collect exited $RC after SIGTERM"
LC_ALL=C grep -aqF "winner/sample-ether.pcap" "$WORK/tm.pcapng" || fail "no IDB named winner/"
LC_ALL=C grep -aqF "flagged/sample-ether.pcap" "$WORK/tm.pcapng" || fail "no IDB named flagged/"
LC_ALL=C grep -aqF "plain/" "$WORK/tm.pcapng" && fail "an IDB named after the plain NODE_ID"
LC_ALL=C grep -aqF "$descr" "$WORK/tm.pcapng" || fail "the IDB lacks the description '$descr'"

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
