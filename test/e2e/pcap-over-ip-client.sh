#!/usr/bin/env bash
# READ_PCAP_OVER_IP: the agent reads a classic pcap stream from a TCP server
# (a python3 server here, serving what `tcpdump -w - | nc -l PORT` would).
# - the server is not there at first: the agent retries and connects when
#   it appears;
# - the first connection stops for 3 s in the middle of a record: what came
#   before reaches the collector meanwhile, and the agent stays heard (it
#   does not block on the half record);
# - the server then drops the connection mid-stream, offers a raw-IP stream
#   next (refused: another link type), then the rest of the Ethernet
#   stream: the output holds exactly the server's Ethernet packets
#   (timestamps at ns, lengths, bytes), one gap is counted;
# - SIGTERM: everything acknowledged, exit 0; FILTER applies to the stream;
#   SIGTERM while waiting for the first stream exits 0; DEVICE and
#   READ_PCAP_OVER_IP together are refused.
. "$(dirname "$0")/lib.sh"
need curl ss python3 tcpdump tshark capinfos

"$TOOLS/gen-sample" "$WORK/in.pcap" 200 ether 1717
"$TOOLS/gen-sample" "$WORK/raw.pcap" 10 raw 1718

cat >"$WORK/server.py" <<'PY'
# server.py ETHER.pcap RAW.pcap PORT plan|whole: serves connections one at a
# time and prints "conn N" as each is accepted.
import socket, struct, sys, time

def records(path):
    data = open(path, 'rb').read()
    swap = '<' if data[:4] in (b'\xd4\xc3\xb2\xa1', b'\x4d\x3c\xb2\xa1') else '>'
    off, out = 24, []
    while off < len(data):
        caplen = struct.unpack(swap + 'I', data[off + 8:off + 12])[0]
        out.append(data[off:off + 16 + caplen])
        off += 16 + caplen
    return data[:24], out

eh, er = records(sys.argv[1])
rh, rr = records(sys.argv[2])
mode = sys.argv[4]
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(('127.0.0.1', int(sys.argv[3])))
srv.listen(4)

def until_closed(c, limit):
    c.settimeout(limit)
    try:
        while c.recv(1024):
            pass
    except OSError:
        pass

plan = [1, 2, 3] if mode == 'plan' else [0]
for n, step in enumerate(plan, 1):
    c, _ = srv.accept()
    print('conn', n, flush=True)
    if step == 0:    # the whole file, then held open
        c.sendall(eh + b''.join(er))
        until_closed(c, 30)
    elif step == 1:  # 30 packets and 10 bytes of the 31st; 3 s; up to 60; dropped
        c.sendall(eh + b''.join(er[:30]) + er[30][:10])
        time.sleep(3)
        c.sendall(er[30][10:] + b''.join(er[31:60]))
        time.sleep(0.2)
    elif step == 2:  # another link type: the agent must hang up
        c.sendall(rh + b''.join(rr))
        until_closed(c, 10)
    elif step == 3:  # the rest, record by record in two writes, then held open
        c.sendall(eh)
        for r in er[60:]:
            c.sendall(r[:7])
            c.sendall(r[7:])
        until_closed(c, 30)
    c.close()
PY

pick_port; cport=$PORT
pick_port; mc=$PORT
pick_port; sport=$PORT
pick_port; ma=$PORT
start collect COLLECT_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT=127.0.0.1:$mc \
    OUTPUT=$WORK/out.pcapng STARTUP_WAIT_MS=0 SOURCE_IDLE_S=2 -- "$COLLECT"
wait_listening "$mc" 10

# the server is not there yet: the agent tries, and says so once
start agent RELAY_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT=127.0.0.1:$ma NODE_ID=poip \
    READ_PCAP_OVER_IP=127.0.0.1:$sport READ_PCAP_OVER_IP_RETRY_MS=100 -- "$CAPTURE"
wait_listening "$ma" 10
end=$((SECONDS + 5))
until [ "$(metric "$ma" tapmesh_capture_pcap_over_ip_connect_failures_total)" -ge 2 ] 2>/dev/null; do
    [ $SECONDS -lt $end ] || fail "the agent did not retry a server that is not there"
    sleep 0.05
done
curl -fsS --max-time 2 "http://127.0.0.1:$ma/healthz" >/dev/null ||
    fail "/healthz fails while the agent waits for its server"
[ "$(grep -c 'cannot connect' "$WORK/agent.log")" = 1 ] ||
    fail "the outage is not logged exactly once: $(grep -c 'cannot connect' "$WORK/agent.log")"

OUT_TO=$WORK/server.out start server -- python3 "$WORK/server.py" "$WORK/in.pcap" \
    "$WORK/raw.pcap" "$sport" plan
# the first 30 packets arrive while the 31st waits half sent
end=$((SECONDS + 5))
until [ "$(metric "$mc" tapmesh_collect_packets_total)" = 30 ] 2>/dev/null; do
    [ $SECONDS -lt $end ] ||
        fail "the 30 whole packets did not arrive while a record was half sent: $(metric "$mc" tapmesh_collect_packets_total)"
    sleep 0.05
done
sleep 1.5 # more than half the pause: SOURCE_IDLE_S=2 would have run out by its end
[ "$(metric "$mc" tapmesh_collect_packets_total)" = 30 ] || fail "packets beyond the half record arrived early"
grep -q "silent for" "$WORK/collect.log" && fail "the agent went silent while a record was half sent"

wait_metric "$mc" tapmesh_collect_packets_total 200 15
[ "$(metric "$ma" tapmesh_capture_pcap_over_ip_gaps_total)" = 1 ] ||
    fail "gaps: $(metric "$ma" tapmesh_capture_pcap_over_ip_gaps_total), expected 1"
[ "$(metric "$ma" 'tapmesh_capture_pcap_over_ip_refused_total{reason="linktype"}')" = 1 ] ||
    fail "refused linktype: $(metric "$ma" 'tapmesh_capture_pcap_over_ip_refused_total{reason="linktype"}')"
[ "$(metric "$ma" tapmesh_capture_pcap_over_ip_connects_total)" = 3 ] ||
    fail "connects: $(metric "$ma" tapmesh_capture_pcap_over_ip_connects_total), expected 3"
[ "$(metric "$ma" tapmesh_capture_pcap_over_ip_disconnects_total)" = 2 ] ||
    fail "disconnects: $(metric "$ma" tapmesh_capture_pcap_over_ip_disconnects_total), expected 2"
[ "$(metric "$ma" tapmesh_capture_pcap_over_ip_connected)" = 1 ] || fail "not connected"
grep -q "link type RAW (101), where the first stream had EN10MB (1)" "$WORK/agent.log" ||
    fail "the refused stream is not logged with both link types"
grep -q "what the server sent in between was missed" "$WORK/agent.log" || fail "the gap is not logged"
promcheck "$ma"
stop agent
[ "$RC" = 0 ] || fail "the agent exited with $RC on SIGTERM, expected 0"
grep -q "done: 200 packets sent and acknowledged" "$WORK/agent.log" || fail "not all acknowledged"
stop collect
same_packets "$WORK/in.pcap" "$WORK/out.pcapng"
readers_accept "$WORK/out.pcapng" 200
tshark -r "$WORK/out.pcapng" -T fields -e frame.interface_name -c 1 | has "poip/poip:127.0.0.1:$sport" ||
    fail "interface name: $(tshark -r "$WORK/out.pcapng" -T fields -e frame.interface_name -c 1)"
stop server

# FILTER on the stream: what tcpdump's filter passes, nothing else
tcpdump --time-stamp-precision=nano -r "$WORK/in.pcap" -w "$WORK/udp.pcap" udp 2>/dev/null
nudp=$(tcpdump -nn -r "$WORK/udp.pcap" 2>/dev/null | wc -l)
pick_port; cport=$PORT
pick_port; mc=$PORT
pick_port; sport=$PORT
start collect2 COLLECT_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT=127.0.0.1:$mc \
    OUTPUT=$WORK/udp.pcapng STARTUP_WAIT_MS=0 -- "$COLLECT"
OUT_TO=$WORK/server2.out start server2 -- python3 "$WORK/server.py" "$WORK/in.pcap" \
    "$WORK/raw.pcap" "$sport" whole
wait_listening "$mc" 10
start filtered RELAY_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT= NODE_ID=udp \
    READ_PCAP_OVER_IP=127.0.0.1:$sport READ_PCAP_OVER_IP_RETRY_MS=50 FILTER=udp -- "$CAPTURE"
wait_metric "$mc" tapmesh_collect_packets_total "$nudp" 10
stop filtered
[ "$RC" = 0 ] || fail "the filtered agent exited with $RC"
stop collect2
same_packets "$WORK/udp.pcap" "$WORK/udp.pcapng"

# SIGTERM before any server: exit 0 at once
pick_port; sport=$PORT
start lonely RELAY_ENDPOINT=tcp://127.0.0.1:$cport METRICS_ADDRPORT= NODE_ID=lonely \
    READ_PCAP_OVER_IP=127.0.0.1:$sport -- "$CAPTURE"
sleep 0.5
stop lonely
[ "$RC" = 0 ] || fail "an agent waiting for its first stream exited with $RC on SIGTERM"

# settings that cannot go together
start both METRICS_ADDRPORT= DEVICE=lo READ_PCAP_OVER_IP=127.0.0.1:$sport -- "$CAPTURE"
expect_exit both 10 2
grep -q "READ_PCAP_OVER_IP=127.0.0.1:$sport and DEVICE=lo" "$WORK/both.log" ||
    fail "DEVICE with READ_PCAP_OVER_IP: $(cat "$WORK/both.log")"
start promisc METRICS_ADDRPORT= PROMISC=false READ_PCAP_OVER_IP=127.0.0.1:$sport -- "$CAPTURE"
expect_exit promisc 10 2
grep -q "PROMISC=false: not for READ_PCAP_OVER_IP" "$WORK/promisc.log" ||
    fail "PROMISC with READ_PCAP_OVER_IP: $(cat "$WORK/promisc.log")"
start badaddr METRICS_ADDRPORT= READ_PCAP_OVER_IP=::1:57012 -- "$CAPTURE"
expect_exit badaddr 10 2
grep -q "READ_PCAP_OVER_IP=::1:57012: an IPv6 address goes in brackets" "$WORK/badaddr.log" ||
    fail "a bare IPv6 address: $(cat "$WORK/badaddr.log")"
log "ok: a PCAP-over-IP stream, cut, refused and resumed, arrives whole and in order; FILTER applies; SIGTERM exits 0"
