#!/usr/bin/env bash
# Epochs cannot be guessed (shared DESIGN "Delivery", issue "Security" 3):
# two agents started in a row on the same file get different epochs, neither
# of them near the current time in nanoseconds (an epoch that is a clock
# reading can be guessed from the agent's start time on /metrics). The
# epoch is logged at start-up but is not on /metrics, and the dead-letter
# file names do not carry it, in decimal or in hex.
. "$(dirname "$0")/lib.sh"
need curl ss

input=$DATA/sample-ether.pcap
pick_port; port=$PORT # nobody listens: everything is dead-lettered
pick_port; mport=$PORT

# epoch_of NAME: the epoch NAME's log gave at start-up
epoch_of() {
    sed -n 's/.*source [^ ]* epoch \([0-9][0-9]*\): .*/\1/p' "$WORK/$1.log" | head -1
}

epochs=()
for run in 1 2; do
    start "run$run" RELAY_ENDPOINT=tcp://127.0.0.1:$port METRICS_ADDRPORT=127.0.0.1:$mport \
        NODE_ID=edge READ_FILE=$input RETRY_TIMEOUT_S=2 ACK_TIMEOUT_MS=200 -- "$CAPTURE"
    wait_listening "$mport" 10
    metrics "$mport" >"$WORK/metrics$run.txt"
    expect_exit "run$run" 30 1
    e=$(epoch_of "run$run")
    [ -n "$e" ] || fail "run $run logged no epoch: $(head -5 "$WORK/run$run.log")"
    epochs+=("$e")
done

now=$(date +%s%N)
[ "${epochs[0]}" != "${epochs[1]}" ] || fail "two runs in a row had the same epoch ${epochs[0]}"
for run in 1 2; do
    e=${epochs[$((run - 1))]}
    [ "$e" != 0 ] || fail "run $run: epoch 0"
    # more than an hour away from now, in nanoseconds (doubles are precise enough)
    awk -v e="$e" -v now="$now" 'BEGIN { d = e - now; if (d < 0) d = -d; exit !(d > 3.6e12) }' ||
        fail "run $run: epoch $e is within an hour of the time now ($now ns): a clock reading"
    ! grep -q -- "$e" "$WORK/metrics$run.txt" || fail "run $run: the epoch $e is on /metrics"
done

# the dead-letter files: one per run, none named after its epoch
files=("$DLQ_DIR"/edge-*.pcapng)
[ ${#files[@]} = 2 ] && [ -f "${files[0]}" ] && [ -f "${files[1]}" ] ||
    fail "expected two dead-letter files, found: ${files[*]}"
for f in "${files[@]}"; do
    name=$(basename "$f")
    for e in "${epochs[@]}"; do
        hex=$(printf '%x' $((e)))
        hex16=$(printf '%016x' $((e)))
        case "${name,,}" in
        *"$e"* | *"$hex"* | *"$hex16"*) fail "dead-letter file $name carries the epoch $e ($hex)" ;;
        esac
    done
done
# each file is the whole input (its name is not the only thing that changed)
for f in "${files[@]}"; do
    same_packets "$input" "$f"
done
log "ok: epochs ${epochs[*]}, dead-letter files $(basename -a "${files[@]}" | tr '\n' ' ')"
